//! Making sure the external tools the build and tests need are present,
//! installing whatever is missing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::util::{capture, cargo, cargo_install_bin, have, root, run, say, Result};

pub const CHROMIUM: &str = "/usr/bin/chromium";
const VULKAN_ICD_DIR: &str = "/usr/share/vulkan/icd.d";
const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// Is there an llvmpipe (lavapipe) Vulkan ICD?
fn have_lavapipe() -> bool {
    fs::read_dir(VULKAN_ICD_DIR)
        .map(|rd| {
            rd.flatten().any(|e| {
                let n = e.file_name();
                let n = n.to_string_lossy();
                n.starts_with("lvp_icd") && n.ends_with(".json")
            })
        })
        .unwrap_or(false)
}

/// apt packages: chromium (browser tests) and mesa-vulkan-drivers
/// (llvmpipe Vulkan for the native wgpu tests).
pub fn ensure_apt_packages() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new(CHROMIUM).exists() {
        missing.push(CHROMIUM.to_string());
    }
    if !have_lavapipe() {
        missing.push(format!("{VULKAN_ICD_DIR}/lvp_icd*.json"));
    }
    if missing.is_empty() {
        say(format!(
            "apt packages chromium mesa-vulkan-drivers: present ({CHROMIUM}, lavapipe ICD)"
        ));
        return Ok(());
    }
    let pkgs = ["chromium", "mesa-vulkan-drivers", "libvulkan1"];
    say(format!(
        "installing apt packages {} (missing: {})",
        pkgs.join(" "),
        missing.join(", ")
    ));
    if !have("apt-get") {
        return Err(format!(
            "{} missing and apt-get is not available; install chromium and mesa-vulkan-drivers by hand",
            missing.join(", ")
        ));
    }
    let is_root = capture(Command::new("id").arg("-u")).is_some_and(|s| s.trim() == "0");
    let apt = |args: &[&str]| -> Command {
        let mut c = if is_root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.arg("apt-get");
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run(&mut apt(&["update"]))?;
    let mut install = apt(&["install", "-y", "--no-install-recommends"]);
    install.args(pkgs);
    run(&mut install)?;
    if !Path::new(CHROMIUM).exists() {
        return Err(format!("{CHROMIUM} still missing after apt-get install"));
    }
    if !have_lavapipe() {
        return Err(format!(
            "no {VULKAN_ICD_DIR}/lvp_icd*.json after installing mesa-vulkan-drivers"
        ));
    }
    Ok(())
}

/// `rustup target add wasm32-unknown-unknown` unless already installed.
pub fn ensure_wasm_target(install: bool) -> Result<()> {
    let installed = capture(Command::new("rustup").args(["target", "list", "--installed"]))
        .map(|s| s.lines().any(|l| l.trim() == WASM_TARGET));
    let installed = match installed {
        Some(b) => b,
        // No rustup: look in the sysroot directly.
        None => capture(Command::new("rustc").args(["--print", "sysroot"]))
            .map(|s| {
                Path::new(s.trim())
                    .join("lib/rustlib")
                    .join(WASM_TARGET)
                    .is_dir()
            })
            .unwrap_or(false),
    };
    if installed {
        say(format!("rust target {WASM_TARGET}: installed"));
        return Ok(());
    }
    if !install {
        return Err(format!(
            "rust target {WASM_TARGET} is not installed (run without --no-install, or `rustup target add {WASM_TARGET}`)"
        ));
    }
    say(format!("installing rust target {WASM_TARGET} (missing)"));
    run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
}

/// Version of the `wasm-bindgen` package recorded in the workspace Cargo.lock.
pub fn locked_wasm_bindgen_version() -> Result<String> {
    let lock = root().join("Cargo.lock");
    if !lock.exists() {
        say("Cargo.lock missing; resolving the workspace to create it");
        let mut c = cargo();
        c.current_dir(root())
            .args(["metadata", "--format-version", "1", "--quiet"])
            .stdout(std::process::Stdio::null());
        run(&mut c)?;
    }
    let text = fs::read_to_string(&lock).map_err(|e| format!("reading {}: {e}", lock.display()))?;
    let versions = lock_versions(&text, "wasm-bindgen");
    match versions.as_slice() {
        [v] => Ok(v.clone()),
        [] => Err(format!("no `wasm-bindgen` package in {}", lock.display())),
        vs => Err(format!(
            "several `wasm-bindgen` versions in {} ({}); pin one",
            lock.display(),
            vs.join(", ")
        )),
    }
}

/// All versions of package `name` in Cargo.lock text.
pub fn lock_versions(text: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur_name: Option<String> = None;
    let mut cur_version: Option<String> = None;
    let mut flush = |n: &mut Option<String>, v: &mut Option<String>| {
        if let (Some(n), Some(v)) = (n.take(), v.take()) {
            if n == name && !out.contains(&v) {
                out.push(v);
            }
        }
    };
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            flush(&mut cur_name, &mut cur_version);
            cur_name = None;
            cur_version = None;
        } else if let Some(v) = toml_str(line, "name") {
            cur_name = Some(v);
        } else if let Some(v) = toml_str(line, "version") {
            cur_version = Some(v);
        }
    }
    flush(&mut cur_name, &mut cur_version);
    out
}

fn toml_str(line: &str, key: &str) -> Option<String> {
    let rest = line
        .strip_prefix(key)?
        .trim_start()
        .strip_prefix('=')?
        .trim();
    let rest = rest.strip_prefix('"')?;
    Some(rest[..rest.find('"')?].to_string())
}

/// `wasm-bindgen --version` -> "0.2.130"
fn wasm_bindgen_version(exe: &Path) -> Option<String> {
    let out = capture(Command::new(exe).arg("--version"))?;
    out.split_whitespace().nth(1).map(str::to_string)
}

/// Find (or `cargo install`) a wasm-bindgen CLI whose version equals the
/// `wasm-bindgen` crate in Cargo.lock; returns the executable to use.
pub fn ensure_wasm_bindgen(install: bool) -> Result<PathBuf> {
    let want = locked_wasm_bindgen_version()?;
    let installed = cargo_install_bin().join("wasm-bindgen");
    let candidates = [PathBuf::from("wasm-bindgen"), installed.clone()];
    let mut seen = Vec::new();
    for exe in &candidates {
        match wasm_bindgen_version(exe) {
            Some(v) if v == want => {
                say(format!(
                    "wasm-bindgen-cli {want}: installed ({})",
                    exe.display()
                ));
                return Ok(exe.clone());
            }
            Some(v) => seen.push(format!("{} is {v}", exe.display())),
            None => {}
        }
    }
    let why = if seen.is_empty() {
        "missing".to_string()
    } else {
        seen.join(", ")
    };
    if !install {
        return Err(format!(
            "need wasm-bindgen-cli {want} (Cargo.lock), found: {why}; run without --no-install"
        ));
    }
    say(format!("installing wasm-bindgen-cli {want} ({why})"));
    run(cargo().args(["install", "wasm-bindgen-cli", "--version", &want]))?;
    match wasm_bindgen_version(&installed) {
        Some(v) if v == want => Ok(installed),
        other => Err(format!(
            "after cargo install, {} reports version {:?}, wanted {want}",
            installed.display(),
            other
        )),
    }
}

/// Python venv at target/py with tests/requirements.txt installed.
/// Returns the absolute path of the venv's python.
pub fn ensure_python_venv(install: bool) -> Result<PathBuf> {
    let root = root();
    let venv = root.join("target/py");
    let python = venv.join("bin/python");
    let req_path = root.join("tests/requirements.txt");
    let req = fs::read_to_string(&req_path)
        .map_err(|e| format!("reading {}: {e}", req_path.display()))?;
    let stamp = venv.join(".xtask-requirements.stamp");
    let up_to_date = python.exists() && fs::read_to_string(&stamp).ok().as_deref() == Some(&req);
    if up_to_date {
        say("python venv target/py: up to date with tests/requirements.txt");
        return Ok(python);
    }
    if !install {
        return Err(
            "python venv target/py missing or out of date; run without --no-install".into(),
        );
    }
    if !python.exists() {
        say("creating python venv target/py (missing)");
        if !have("python3") {
            return Err("python3 not found on PATH (needed for the reference checks)".into());
        }
        run(Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .current_dir(&root))
        .map_err(|e| {
            format!("{e}\n(on Debian/Ubuntu, `apt-get install python3-venv` may be needed)")
        })?;
    }
    say("installing python packages from tests/requirements.txt (changed or new venv)");
    run(Command::new(venv.join("bin/pip"))
        .args(["install", "-q", "--disable-pip-version-check", "-r"])
        .arg(&req_path)
        .current_dir(&root))?;
    fs::write(&stamp, &req).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(python)
}

/// node (>= 20, needed by playwright-core) must be on PATH; we do not install it.
pub fn check_node() -> Result<()> {
    let v = capture(Command::new("node").arg("--version")).ok_or_else(|| {
        "node not found on PATH; install Node.js >= 20 (needed for the browser tests)".to_string()
    })?;
    let v = v.trim();
    let major: u32 = v
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    if major < 20 {
        return Err(format!(
            "node {v} is too old; playwright-core needs Node.js >= 20"
        ));
    }
    say(format!("node {v}: ok"));
    Ok(())
}

/// `npm ci` in tests/browser unless node_modules matches package-lock.json.
pub fn ensure_node_modules(install: bool) -> Result<()> {
    let dir = root().join("tests/browser");
    let lock_path = dir.join("package-lock.json");
    let lock = fs::read_to_string(&lock_path)
        .map_err(|e| format!("reading {}: {e}", lock_path.display()))?;
    let stamp = dir.join("node_modules/.xtask-package-lock.stamp");
    let up_to_date = dir
        .join("node_modules/playwright-core/package.json")
        .exists()
        && fs::read_to_string(&stamp).ok().as_deref() == Some(&lock);
    if up_to_date {
        say("node packages in tests/browser: up to date with package-lock.json");
        return Ok(());
    }
    if !install {
        return Err(
            "tests/browser/node_modules missing or out of date; run without --no-install".into(),
        );
    }
    say("installing node packages in tests/browser (`npm ci`; missing or out of date)");
    run(Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(&dir))?;
    fs::write(&stamp, &lock).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lock() {
        let text = r#"
[[package]]
name = "wasm-bindgen"
version = "0.2.130"
source = "registry+https://github.com/rust-lang/crates.io-index"
dependencies = [
 "wasm-bindgen-macro",
]

[[package]]
name = "wasm-bindgen-macro"
version = "0.2.130"
"#;
        assert_eq!(
            lock_versions(text, "wasm-bindgen"),
            vec!["0.2.130".to_string()]
        );
        assert_eq!(lock_versions(text, "wasm-bindgen-macro").len(), 1);
        assert!(lock_versions(text, "serde").is_empty());
    }
}
