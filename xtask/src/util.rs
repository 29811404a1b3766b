//! Small helpers: workspace root, running commands loudly, tool lookup.

use std::env;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub type Result<T> = std::result::Result<T, String>;

/// Workspace root (xtask lives in `<root>/xtask`).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// The cargo that launched us (falls back to `cargo` on PATH).
pub fn cargo() -> Command {
    Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

pub fn say(msg: impl AsRef<str>) {
    println!("xtask: {}", msg.as_ref());
}

/// Human-readable rendering of a command line.
pub fn show(cmd: &Command) -> String {
    let mut s = String::new();
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            s.push_str(&format!("{}={} ", k.to_string_lossy(), v.to_string_lossy()));
        }
    }
    s.push_str(&quote(cmd.get_program()));
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&quote(a));
    }
    s
}

fn quote(a: &OsStr) -> String {
    let a = a.to_string_lossy();
    if !a.is_empty()
        && a.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
    {
        a.into_owned()
    } else {
        format!("'{}'", a.replace('\'', "'\\''"))
    }
}

/// Run a command with inherited stdio; error unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = show(cmd);
    say(format!("running `{line}`"));
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{line}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({status})"))
    }
}

/// Run a command quietly and return its stdout, or None if it cannot be
/// started or exits non-zero.
pub fn capture(cmd: &mut Command) -> Option<String> {
    let out = cmd
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if out.status.success() {
        Some(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        None
    }
}

/// Whether `name` can be started from PATH.
pub fn have(name: &str) -> bool {
    Command::new(name)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Where `cargo install` puts binaries.
pub fn cargo_install_bin() -> PathBuf {
    if let Some(r) = env::var_os("CARGO_INSTALL_ROOT") {
        return PathBuf::from(r).join("bin");
    }
    if let Some(h) = env::var_os("CARGO_HOME") {
        return PathBuf::from(h).join("bin");
    }
    PathBuf::from(env::var_os("HOME").unwrap_or_else(|| "/root".into()))
        .join(".cargo")
        .join("bin")
}
