//! `canaryc playground`: serves the embedded playground bundle (see `build.rs`) over plain HTTP/1.1.
//!
//! The page is static files (HTML, JS, the wasm compiler + evaluator), so the server needs nothing but
//! `std`: GET/HEAD of an embedded path, one thread per connection, `Connection: close`. It is meant for a
//! developer's own machine, hence the loopback default; it never reads the file system.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

include!(concat!(env!("OUT_DIR"), "/playground_bundle.rs"));

/// What `serve` says when `canaryc` was built before the bundle existed (it never serves a stand-in page).
pub const NOT_BUILT: &str = "playground bundle not built: run `make playground`";

/// Serves the playground on `listen` until the process is stopped. Prints the URL (with the actual port
/// when `listen` has port 0, which tests use to get a free port).
pub fn serve(listen: SocketAddr) -> Result<(), String> {
    if BUNDLE.is_empty() {
        return Err(NOT_BUILT.to_string());
    }
    let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    println!("canary playground: http://{addr}/  (Ctrl-C to stop)");
    for stream in listener.incoming() {
        // A failed accept (e.g. the client gave up) concerns that client only.
        let Ok(stream) = stream else { continue };
        std::thread::spawn(move || {
            let _ = handle(stream);
        });
    }
    Ok(())
}

/// Answers one request. Bodies are ignored (only GET and HEAD are served), so reading stops at the blank
/// line; a slow or silent client is dropped after the timeout.
fn handle(stream: TcpStream) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    // At most 64 KiB of request head, read line by line; the headers themselves are not needed.
    let mut reader = BufReader::new(stream.try_clone()?).take(64 * 1024);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut header = String::new();
    loop {
        header.clear();
        if reader.read_line(&mut header)? == 0 || header.trim_end().is_empty() {
            break;
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or("/"));
    let mut out = stream;
    if method != "GET" && method != "HEAD" {
        return respond(&mut out, "405 Method Not Allowed", "text/plain; charset=utf-8", b"only GET and HEAD\n", true);
    }
    let path = target.split(['?', '#']).next().unwrap_or("/").trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match lookup(path) {
        Some((content_type, body)) => respond(&mut out, "200 OK", content_type, body, method == "GET"),
        None => respond(&mut out, "404 Not Found", "text/plain; charset=utf-8", b"not found\n", method == "GET"),
    }
}

/// The embedded file at `path` (relative, `/`-separated), with its content type.
fn lookup(path: &str) -> Option<(&'static str, &'static [u8])> {
    BUNDLE.iter().find(|(p, _, _)| *p == path).map(|(_, t, b)| (*t, *b))
}

fn respond(out: &mut TcpStream, status: &str, content_type: &str, body: &[u8], with_body: bool) -> std::io::Result<()> {
    // `no-cache`: a rebuilt canaryc must not leave a browser running the previous compiler.
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: close\r\n\r\n",
        body.len()
    );
    out.write_all(head.as_bytes())?;
    if with_body {
        out.write_all(body)?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serves_the_bundle_or_refuses_to_start() {
        if BUNDLE.is_empty() {
            let err = serve("127.0.0.1:0".parse().unwrap()).unwrap_err();
            assert!(err.contains("playground bundle not built"), "{err}");
            return;
        }
        assert!(lookup("index.html").is_some_and(|(t, _)| t.starts_with("text/html")));
        let wasm = BUNDLE.iter().find(|(p, _, _)| p.ends_with(".wasm")).expect("the bundle has a wasm module");
        assert_eq!(wasm.1, "application/wasm");
        assert!(lookup("../Cargo.toml").is_none());
    }

    /// One request over a real socket: the status line, the headers browsers rely on, the body.
    fn get(request: &str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || handle(listener.accept().unwrap().0));
        let mut client = TcpStream::connect(addr).unwrap();
        client.write_all(request.as_bytes()).unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).unwrap();
        server.join().unwrap().unwrap();
        String::from_utf8_lossy(&response).into_owned()
    }

    #[test]
    fn answers_get_head_and_unknown_paths() {
        if BUNDLE.is_empty() {
            return; // covered by the test above
        }
        let index = get("GET /?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
        assert!(index.starts_with("HTTP/1.1 200 OK\r\n"), "{index}");
        assert!(index.contains("Content-Type: text/html; charset=utf-8\r\n"));
        assert!(index.contains("<!doctype html>"));
        let head = get("HEAD /index.html HTTP/1.1\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200 OK") && head.ends_with("\r\n\r\n"), "{head}");
        assert!(get("GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").starts_with("HTTP/1.1 405"));
    }
}
