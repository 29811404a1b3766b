//! A tiny static file server (std::net, one thread per connection) for the
//! web UI: GET/HEAD only, strict path handling, CSP + no-store headers.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

pub const CSP: &str = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
connect-src 'self'; img-src 'self' data: blob:; style-src 'self'; object-src 'none'; \
base-uri 'none'";

const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Serve `dir` on `listener` forever (call from a background thread for
/// tests). `log` prints one line per request.
pub fn serve(listener: TcpListener, dir: &Path, log: bool) -> io::Result<()> {
    let dir = Arc::new(dir.canonicalize()?);
    for conn in listener.incoming() {
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                eprintln!("serve: accept failed: {e}");
                continue;
            }
        };
        let dir = Arc::clone(&dir);
        thread::spawn(move || {
            if let Err(e) = handle(stream, &dir, log) {
                if log {
                    eprintln!("serve: connection error: {e}");
                }
            }
        });
    }
    Ok(())
}

/// Bind `127.0.0.1:port` (port 0 = ephemeral) and serve `dir` in a
/// background thread; returns the base URL (`http://127.0.0.1:N/`).
pub fn spawn_background(dir: &Path, port: u16) -> io::Result<String> {
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    let dir = dir.to_path_buf();
    dir.canonicalize()?; // fail early, not in the thread
    thread::spawn(move || {
        if let Err(e) = serve(listener, &dir, false) {
            eprintln!("serve: stopped: {e}");
        }
    });
    Ok(format!("http://{addr}/"))
}

fn handle(stream: TcpStream, dir: &Path, log: bool) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;

    // Request line + headers (headers are read and ignored).
    let mut head = Vec::new();
    let mut request_line = String::new();
    loop {
        let mut line = Vec::new();
        let n = (&mut reader)
            .take((MAX_HEADER_BYTES + 1 - head.len()) as u64)
            .read_until(b'\n', &mut line)?;
        if n == 0 {
            if head.is_empty() {
                return Ok(()); // client connected and left
            }
            break;
        }
        head.extend_from_slice(&line);
        if head.len() > MAX_HEADER_BYTES {
            return respond_error(&mut out, 431, "Request Header Fields Too Large", false);
        }
        if request_line.is_empty() {
            request_line = String::from_utf8_lossy(&line).trim_end().to_string();
            continue;
        }
        if line == b"\r\n" || line == b"\n" {
            break;
        }
    }

    let mut parts = request_line.split(' ');
    let (method, target, version) = (parts.next(), parts.next(), parts.next());
    let (method, target) = match (method, target, version, parts.next()) {
        (Some(m), Some(t), Some(v), None) if v.starts_with("HTTP/1.") => (m, t),
        _ => return respond_error(&mut out, 400, "Bad Request", false),
    };
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => {
            if log {
                println!("serve: {method} {target} -> 405");
            }
            return respond_error(&mut out, 405, "Method Not Allowed", false);
        }
    };

    let (status, reason) = match resolve(dir, target) {
        Ok(path) => match File::open(&path).and_then(|f| Ok((f.metadata()?.len(), f))) {
            Ok((len, mut file)) => {
                let mut hdr = headers(200, "OK", content_type(&path), len);
                hdr.push_str("\r\n");
                out.write_all(hdr.as_bytes())?;
                if !head_only {
                    io::copy(&mut file, &mut out)?;
                }
                out.flush()?;
                if log {
                    println!("serve: {method} {target} -> 200 ({len} bytes)");
                }
                return Ok(());
            }
            Err(_) => (404, "Not Found"),
        },
        Err(code) => (
            code,
            if code == 404 {
                "Not Found"
            } else {
                "Bad Request"
            },
        ),
    };
    if log {
        println!("serve: {method} {target} -> {status}");
    }
    respond_error(&mut out, status, reason, head_only)
}

fn headers(status: u16, reason: &str, ctype: &str, len: u64) -> String {
    format!(
        "HTTP/1.1 {status} {reason}\r\n\
         Content-Type: {ctype}\r\n\
         Content-Length: {len}\r\n\
         Content-Security-Policy: {CSP}\r\n\
         Cache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\n\
         Connection: close\r\n"
    )
}

fn respond_error(
    out: &mut TcpStream,
    status: u16,
    reason: &str,
    head_only: bool,
) -> io::Result<()> {
    let body = format!("{status} {reason}\n");
    let mut hdr = headers(
        status,
        reason,
        "text/plain; charset=utf-8",
        body.len() as u64,
    );
    if status == 405 {
        hdr.push_str("Allow: GET, HEAD\r\n");
    }
    hdr.push_str("\r\n");
    out.write_all(hdr.as_bytes())?;
    if !head_only {
        out.write_all(body.as_bytes())?;
    }
    out.flush()
}

/// Map a request target to a file under `dir`, or an HTTP status
/// (400 for malformed/hostile paths, 404 for missing ones).
pub fn resolve(dir: &Path, target: &str) -> Result<PathBuf, u16> {
    // Only origin-form targets ("/path?query").
    if !target.starts_with('/') {
        return Err(400);
    }
    let path = target.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path).ok_or(400u16)?;
    let decoded = String::from_utf8(decoded).map_err(|_| 400u16)?;
    if decoded.contains('\0') || decoded.contains('\\') {
        return Err(400);
    }
    let mut rel = PathBuf::new();
    for seg in decoded.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(400),
            s if s.contains(':') => return Err(400),
            s => rel.push(s),
        }
    }
    // Belt and braces: every component must be a plain name.
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(400);
    }
    let mut full = dir.join(&rel);
    if full.is_dir() {
        full.push("index.html");
    }
    // Refuse anything (e.g. via symlinks) that ends up outside `dir`.
    let canon = full.canonicalize().map_err(|_| 404u16)?;
    if !canon.starts_with(dir) || !canon.is_file() {
        return Err(404);
    }
    Ok(canon)
}

/// Strict percent-decoding: `%` must be followed by two hex digits.
fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: u8| (c as char).to_digit(16);
            let hi = hex(*b.get(i + 1)?)?;
            let lo = hex(*b.get(i + 2)?)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream", // incl. .safetensors, .bin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tmpdir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("xtask-serve-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(d.join("www/pkg")).unwrap();
        fs::write(d.join("www/index.html"), "<!doctype html>").unwrap();
        fs::write(d.join("www/pkg/a b.js"), "x").unwrap();
        fs::write(d.join("secret.txt"), "nope").unwrap();
        d
    }

    #[test]
    fn resolves_and_rejects() {
        let d = tmpdir("resolve");
        let www = d.join("www").canonicalize().unwrap();
        assert_eq!(resolve(&www, "/").unwrap(), www.join("index.html"));
        assert_eq!(
            resolve(&www, "/index.html?x=1").unwrap(),
            www.join("index.html")
        );
        assert_eq!(
            resolve(&www, "/pkg/a%20b.js").unwrap(),
            www.join("pkg/a b.js")
        );
        assert_eq!(resolve(&www, "/pkg/").unwrap_err(), 404);
        assert_eq!(resolve(&www, "/missing.js").unwrap_err(), 404);
        for bad in [
            "/../secret.txt",
            "/%2e%2e/secret.txt",
            "/pkg/%2E%2E/%2E%2E/secret.txt",
            "/..%2fsecret.txt",
            "/..%5csecret.txt",
            "/%00",
            "/%zz",
            "/%2",
            "/%ff",
            "http://example.com/",
            "*",
            "/C:/x",
        ] {
            assert_eq!(resolve(&www, bad).unwrap_err(), 400, "{bad}");
        }
        // Leading "//" must not escape to an absolute path.
        assert_eq!(resolve(&www, "//etc/passwd").unwrap_err(), 404);
        let _ = fs::remove_dir_all(&d);
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type(Path::new("a.wasm")), "application/wasm");
        assert!(content_type(Path::new("a.mjs")).starts_with("text/javascript"));
        assert_eq!(
            content_type(Path::new("m.safetensors")),
            "application/octet-stream"
        );
    }

    #[test]
    fn serves_over_tcp() {
        let d = tmpdir("tcp");
        let url = spawn_background(&d.join("www"), 0).unwrap();
        let addr = url.trim_start_matches("http://").trim_end_matches('/');
        let get = |req: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(req.as_bytes()).unwrap();
            let mut r = String::new();
            s.read_to_string(&mut r).unwrap();
            r
        };
        let r = get("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        assert!(r.contains("Content-Security-Policy: default-src 'self'"));
        assert!(r.contains("Cache-Control: no-store"));
        assert!(r.ends_with("<!doctype html>"));
        let r = get("HEAD / HTTP/1.1\r\n\r\n");
        assert!(
            r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n"),
            "{r}"
        );
        assert!(get("POST / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(get("GET /../secret.txt HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(get("GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        let _ = fs::remove_dir_all(&d);
    }
}
