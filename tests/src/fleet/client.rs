//! A keep-alive HTTP/1.1 connection that never retries: a load generator that counts errors must see every
//! one (the weather `Client` retries once on a reused connection, which would hide a reset during a push).
//! Bodies come with a `content-length` (direct responses) or chunked (the admin's `/stats`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Context, Result};

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    /// Connections opened so far (1 for a whole run when nothing closed one).
    pub connects: u64,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None, buf: Vec::with_capacity(1024), connects: 0 }
    }

    /// `GET path` with `headers`; returns (status, body). On any error the connection is dropped (the next
    /// call opens a new one) and the error returned: nothing is retried.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
        let result = self.round_trip(path, headers);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn round_trip(&mut self, path: &str, headers: &[(&str, &str)]) -> Result<(u16, String)> {
        if self.stream.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, TIMEOUT)
                .with_context(|| format!("connecting to {}", self.addr))?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(TIMEOUT))?;
            self.stream = Some(stream);
            self.connects += 1;
        }
        let stream = self.stream.as_mut().expect("connected above");
        let mut req = format!("GET {path} HTTP/1.1\r\nhost: fleet\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).with_context(|| format!("writing to {}", self.addr))?;
        self.buf.clear();
        let mut chunk = [0u8; 4096];
        let answer = loop {
            if let Some(answer) = parse(&self.buf)? {
                break answer;
            }
            match stream.read(&mut chunk) {
                Ok(0) => bail!("{} closed the connection mid-response", self.addr),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e).with_context(|| format!("reading from {}", self.addr)),
            }
        };
        if answer.closing {
            self.stream = None;
        }
        Ok((answer.status, answer.body))
    }
}

struct Answer {
    status: u16,
    body: String,
    closing: bool,
}

/// The response in `raw` once it is complete (`None` until then).
fn parse(raw: &[u8]) -> Result<Option<Answer>> {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else { return Ok(None) };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let status = head
        .strip_prefix("http/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP/1.1 response: {:?}", head.chars().take(200).collect::<String>()))?;
    let header = |name: &str| head.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()));
    let closing = header("connection:").is_some_and(|v| v == "close");
    let rest = &raw[end + 4..];
    let body = if header("transfer-encoding:").is_some_and(|v| v == "chunked") {
        match dechunk(rest)? {
            Some(body) => body,
            None => return Ok(None),
        }
    } else {
        let length: usize = header("content-length:").and_then(|v| v.parse().ok()).unwrap_or(0);
        if rest.len() < length {
            return Ok(None);
        }
        rest[..length].to_vec()
    };
    Ok(Some(Answer { status, body: String::from_utf8_lossy(&body).into_owned(), closing }))
}

/// A chunked body, once its last (empty) chunk has arrived; trailers are not expected.
fn dechunk(mut rest: &[u8]) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    loop {
        let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") else { return Ok(None) };
        let size_text = String::from_utf8_lossy(&rest[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        rest = &rest[eol + 2..];
        if rest.len() < size + 2 {
            return Ok(None);
        }
        if size == 0 {
            return Ok(Some(body));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_only_when_the_whole_body_is_there() {
        let fixed = b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nsubset=v2\n";
        assert!(parse(&fixed[..fixed.len() - 1]).unwrap().is_none());
        let a = parse(fixed).unwrap().unwrap();
        assert_eq!((a.status, a.body.as_str(), a.closing), (200, "subset=v2\n", false));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n4\r\nab: \r\n2\r\n12\r\n0\r\n\r\n";
        assert!(parse(&chunked[..chunked.len() - 3]).unwrap().is_none());
        let a = parse(chunked).unwrap().unwrap();
        assert_eq!((a.body.as_str(), a.closing), ("ab: 12", true));
        assert!(parse(b"garbage\r\n\r\n").is_err());
    }
}
