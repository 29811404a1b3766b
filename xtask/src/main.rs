//! qklab's task runner (the wgpu `xtask` pattern): `cargo xtask <command>`.
//!
//!   cargo xtask serve [--port N]                 build the wasm UI and serve www/
//!   cargo xtask test [--no-install] [--browser-only]
//!                                                install tools, run every test
//!
//! std-only on purpose: CI compiles it from scratch.

mod server;
mod tools;
mod util;

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{exit, Command};

use util::{cargo, root, run, say, Result};

const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  serve [--port N]       ensure tools, build the wasm UI into www/pkg and serve
                         www/ on http://127.0.0.1:N/ (default port 8000)
  test [options]         install missing tools, then run all tests in order:
                         cargo test --workspace, wasm build, browser smoke test
      --no-install       skip installing (only check that tools are present)
      --browser-only     skip the `cargo test --workspace` stage
  help                   show this text
";

fn main() {
    let args: Vec<String> = env::args().skip(1).collect();
    let code = match args.first().map(String::as_str) {
        Some("serve") => cmd_serve(&args[1..]),
        Some("test") => cmd_test(&args[1..]),
        Some("help" | "-h" | "--help") | None => {
            print!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`\n\n{USAGE}")),
    };
    if let Err(e) = code {
        eprintln!("xtask: error: {e}");
        exit(1);
    }
}

/// wasm build + wasm-bindgen into www/pkg.
fn build_wasm(wasm_bindgen: &Path) -> Result<()> {
    let root = root();
    say("building the wasm library (release, wasm32-unknown-unknown)");
    run(cargo().current_dir(&root).args([
        "build",
        "--lib",
        "--release",
        "--target",
        "wasm32-unknown-unknown",
        "-p",
        "qklab",
    ]))?;
    say("generating JS bindings into www/pkg");
    run(Command::new(wasm_bindgen).current_dir(&root).args([
        "--target",
        "web",
        "--no-typescript",
        "--out-dir",
        "www/pkg",
        "target/wasm32-unknown-unknown/release/qklab.wasm",
    ]))
}

fn cmd_serve(args: &[String]) -> Result<()> {
    let mut port: u16 = 8000;
    let mut dir: Option<PathBuf> = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--port" => {
                let v = it.next().ok_or("--port needs a value")?;
                port = v.parse().map_err(|_| format!("bad --port `{v}`"))?;
            }
            // Hidden: serve an arbitrary folder without building anything.
            "--dir" => dir = Some(PathBuf::from(it.next().ok_or("--dir needs a value")?)),
            other => return Err(format!("unknown option `{other}` for serve\n\n{USAGE}")),
        }
    }
    let dir = match dir {
        Some(d) => {
            say(format!(
                "--dir given: serving {} without building",
                d.display()
            ));
            d
        }
        None => {
            tools::ensure_wasm_target(true)?;
            let wb = tools::ensure_wasm_bindgen(true)?;
            build_wasm(&wb)?;
            root().join("www")
        }
    };
    let listener = std::net::TcpListener::bind(("127.0.0.1", port))
        .map_err(|e| format!("cannot listen on 127.0.0.1:{port}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    say(format!(
        "serving {} at http://{addr}/ (Ctrl-C to stop)",
        dir.display()
    ));
    server::serve(listener, &dir, true).map_err(|e| format!("server on {}: {e}", dir.display()))
}

/// Create (if needed) a directory only we can access, as XDG_RUNTIME_DIR must be.
fn private_dir(dir: &Path) -> Result<PathBuf> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        b.mode(0o700);
        b.create(dir)
            .and_then(|()| fs::set_permissions(dir, fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    #[cfg(not(unix))]
    b.create(dir)
        .map_err(|e| format!("creating {}: {e}", dir.display()))?;
    Ok(dir.to_path_buf())
}

struct Runner {
    total: usize,
    index: usize,
    passed: usize,
}

impl Runner {
    fn header(&mut self, name: &str) {
        self.index += 1;
        println!();
        println!(
            "==== xtask test [{}/{}]: {name} ====",
            self.index, self.total
        );
    }

    /// Run a stage; `counts` marks stages that run tests (they count toward
    /// "N passed"). On failure, print the summary and exit non-zero.
    fn stage<T>(&mut self, name: &str, counts: bool, f: impl FnOnce() -> Result<T>) -> T {
        self.header(name);
        match f() {
            Ok(v) => {
                if counts {
                    self.passed += 1;
                }
                v
            }
            Err(e) => {
                eprintln!("xtask: error in stage `{name}`: {e}");
                println!("xtask test: {} passed, 1 failed", self.passed);
                exit(1);
            }
        }
    }
}

fn cmd_test(args: &[String]) -> Result<()> {
    let mut install = true;
    let mut browser_only = false;
    for a in args {
        match a.as_str() {
            "--no-install" => install = false,
            "--browser-only" => browser_only = true,
            other => return Err(format!("unknown option `{other}` for test\n\n{USAGE}")),
        }
    }
    let root = root();
    let mut r = Runner {
        total: if browser_only { 4 } else { 5 },
        index: 0,
        passed: 0,
    };

    // a. tools
    let title = if install {
        "install missing tools"
    } else {
        "check tools (--no-install)"
    };
    let (python, wasm_bindgen) = r.stage(title, false, || {
        if install {
            tools::ensure_apt_packages()?;
        } else if Path::new(tools::CHROMIUM).exists() {
            say(format!("{}: present", tools::CHROMIUM));
        } else {
            return Err(format!(
                "{} missing; run without --no-install",
                tools::CHROMIUM
            ));
        }
        tools::check_node()?;
        tools::ensure_wasm_target(install)?;
        let wb = tools::ensure_wasm_bindgen(install)?;
        let py = if browser_only {
            None
        } else {
            Some(tools::ensure_python_venv(install)?)
        };
        tools::ensure_node_modules(install)?;
        Ok((py, wb))
    });

    // b. native tests (Rust + GPU via lavapipe + Python cross-checks)
    if let Some(python) = python {
        r.stage("cargo test --workspace", true, || {
            let mut cmd = cargo();
            cmd.current_dir(&root)
                .args(["test", "--workspace"])
                .env("QKLAB_PYTHON", &python)
                .env("QKLAB_REQUIRE_PYTHON", "1")
                .env("QKLAB_REQUIRE_GPU", "1");
            // Without it, wgpu's GL/EGL probing prints "error: XDG_RUNTIME_DIR
            // is invalid or not set" on headless CI; harmless but alarming.
            if env::var_os("XDG_RUNTIME_DIR").is_none() {
                cmd.env(
                    "XDG_RUNTIME_DIR",
                    private_dir(&root.join("target/xdg-runtime"))?,
                );
            }
            run(&mut cmd)
        });
    }

    // c. wasm build
    r.stage("wasm build + wasm-bindgen", false, || {
        build_wasm(&wasm_bindgen)
    });

    // d. browser fixtures: the checkpoint the page opens ("sft"), and a
    // second one with other weights ("pre") for the merge check.
    let fixture = root.join("target/browser-fixture/tiny");
    let fixture_pre = root.join("target/browser-fixture/tiny-pre");
    r.stage("browser fixtures (qklab synth)", false, || {
        for (dir, seed) in [(&fixture, "1"), (&fixture_pre, "2")] {
            if dir.exists() {
                fs::remove_dir_all(dir).map_err(|e| format!("removing {}: {e}", dir.display()))?;
            }
            run(cargo()
                .current_dir(&root)
                .args(["run", "--release", "-p", "qklab", "--bin", "qklab", "--"])
                .args([
                    "synth", "--preset", "tiny", "--shards", "2", "--seed", seed, "--out",
                ])
                .arg(dir))?;
            if !dir.join("config.json").exists() {
                return Err(format!("synth wrote no config.json in {}", dir.display()));
            }
        }
        Ok(())
    });

    // e. browser smoke test against a local static server
    r.stage("browser smoke test (headless chromium)", true, || {
        let www = root.join("www");
        if !www.join("index.html").exists() {
            return Err(format!("{} is missing", www.join("index.html").display()));
        }
        let url = server::spawn_background(&www, 0)
            .map_err(|e| format!("starting static server for {}: {e}", www.display()))?;
        say(format!("serving {} at {url}", www.display()));
        run(Command::new("node")
            .current_dir(&root)
            .arg("tests/browser/smoke.mjs")
            .arg(&url)
            .arg(&fixture)
            .arg(&fixture_pre))
    });

    println!();
    println!("xtask test: {} passed, 0 failed", r.passed);
    Ok(())
}
