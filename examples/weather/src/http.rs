//! Just enough HTTP/1.1 for the stand-in services and the load generator: keep-alive, Content-Length and
//! chunked bodies. Dependency-free on purpose: the point of the workload is Envoy and the filter, and a tiny
//! blocking client lets a test push thousands of requests through the mesh in seconds with a few threads.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a blocking read may wait before the request counts as failed (Envoy's own timeouts are 15 s).
const IO_TIMEOUT: Duration = Duration::from_secs(20);
/// Refuse absurd heads/bodies instead of allocating for them.
const MAX_LINE: usize = 64 * 1024;
const MAX_BODY: usize = 16 * 1024 * 1024;

/// A request as a server sees it. Header names are lowercased.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// A response as a client sees it. Header names are lowercased.
#[derive(Debug, Clone, Default)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Request {
    /// First value of a header (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }
}

fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Reads one CRLF-terminated line without the terminator; `None` at a clean end of stream.
fn read_line(reader: &mut impl BufRead) -> io::Result<Option<String>> {
    let mut buf = Vec::new();
    let n = reader.by_ref().take(MAX_LINE as u64).read_until(b'\n', &mut buf)?;
    if n == 0 {
        return Ok(None);
    }
    if buf.last() != Some(&b'\n') {
        return Err(invalid("line too long or truncated"));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf).map(Some).map_err(|_| invalid("non-UTF-8 line"))
}

fn read_headers(reader: &mut impl BufRead) -> io::Result<Vec<(String, String)>> {
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("end of stream inside headers"))?;
        if line.is_empty() {
            return Ok(headers);
        }
        let (name, value) = line.split_once(':').ok_or_else(|| invalid(format!("bad header line `{line}`")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
}

/// Reads a body framed by Content-Length or chunked encoding; `until_close` reads to EOF when neither is given
/// (only meaningful for responses).
fn read_body(reader: &mut impl BufRead, headers: &[(String, String)], until_close: bool) -> io::Result<Vec<u8>> {
    let chunked = find_header(headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked"));
    if chunked {
        return read_chunked(reader);
    }
    let mut body = Vec::new();
    match find_header(headers, "content-length") {
        Some(len) => {
            let len: usize = len.parse().map_err(|_| invalid("bad content-length"))?;
            if len > MAX_BODY {
                return Err(invalid("body too large"));
            }
            body.resize(len, 0);
            reader.read_exact(&mut body)?;
        }
        None if until_close => {
            reader.take(MAX_BODY as u64).read_to_end(&mut body)?;
        }
        None => {}
    }
    Ok(body)
}

fn read_chunked(reader: &mut impl BufRead) -> io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line = read_line(reader)?.ok_or_else(|| invalid("end of stream inside chunked body"))?;
        let size = line.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailers, then the empty line.
            while !read_line(reader)?.unwrap_or_default().is_empty() {}
            return Ok(body);
        }
        if body.len() + size > MAX_BODY {
            return Err(invalid("body too large"));
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        read_line(reader)?;
    }
}

/// Reads the next request on a keep-alive connection; `None` when the client closed it between requests.
pub fn read_request(reader: &mut impl BufRead) -> io::Result<Option<Request>> {
    let Some(line) = read_line(reader)? else { return Ok(None) };
    let mut parts = line.split_whitespace();
    let (Some(method), Some(path)) = (parts.next(), parts.next()) else {
        return Err(invalid(format!("bad request line `{line}`")));
    };
    let headers = read_headers(reader)?;
    let body = read_body(reader, &headers, false)?;
    Ok(Some(Request { method: method.to_string(), path: path.to_string(), headers, body }))
}

/// Writes a complete `text/plain` response in one write (so Nagle never splits head and body).
pub fn write_response(stream: &mut impl Write, status: u16, body: &str) -> io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    };
    let msg = format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(msg.as_bytes())
}

/// A keep-alive HTTP/1.1 client for one upstream address.
///
/// A request that fails on a reused connection is retried once on a fresh one: proxies close idle connections
/// and the tests restart Envoy to apply a new policy, and requests never carry a body, so a retry is safe.
pub struct Client {
    addr: SocketAddr,
    conn: Option<(BufReader<TcpStream>, TcpStream)>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Self {
        Client { addr, conn: None }
    }

    /// `GET path` with the given headers (`host` defaults to the upstream address).
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        self.request("GET", path, headers)
    }

    /// `METHOD path` without a body, with the given header lines in order (repeats are sent as written;
    /// `host` defaults to the upstream address).
    pub fn request(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<Response> {
        let mut head = format!("{method} {path} HTTP/1.1\r\n");
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("host: {}\r\n", self.addr));
        }
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        if method != "GET" {
            head.push_str("content-length: 0\r\n");
        }
        head.push_str("\r\n");
        let reused = self.conn.is_some();
        match self.round_trip(head.as_bytes()) {
            Err(_) if reused => {
                self.conn = None;
                self.round_trip(head.as_bytes())
            }
            other => other,
        }
    }

    fn connect(&mut self) -> io::Result<&mut (BufReader<TcpStream>, TcpStream)> {
        if self.conn.is_none() {
            let stream = TcpStream::connect_timeout(&self.addr, IO_TIMEOUT)?;
            stream.set_nodelay(true)?;
            stream.set_read_timeout(Some(IO_TIMEOUT))?;
            self.conn = Some((BufReader::new(stream.try_clone()?), stream));
        }
        Ok(self.conn.as_mut().expect("connected above"))
    }

    fn round_trip(&mut self, head: &[u8]) -> io::Result<Response> {
        let result = self.try_round_trip(head);
        if !matches!(&result, Ok(r) if r.header("connection") != Some("close")) {
            self.conn = None;
        }
        result
    }

    fn try_round_trip(&mut self, head: &[u8]) -> io::Result<Response> {
        let (reader, writer) = self.connect()?;
        writer.write_all(head)?;
        let line = read_line(reader)?.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| invalid(format!("bad status line `{line}`")))?;
        let headers = read_headers(reader)?;
        let body = read_body(reader, &headers, true)?;
        Ok(Response { status, headers, body: String::from_utf8_lossy(&body).into_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_request_and_a_chunked_response() {
        let raw = b"GET /x HTTP/1.1\r\nHost: a\r\nCookie: user=tester\r\n\r\n";
        let req = read_request(&mut &raw[..]).unwrap().unwrap();
        assert_eq!((req.method.as_str(), req.path.as_str()), ("GET", "/x"));
        assert_eq!(req.header("COOKIE"), Some("user=tester"));
        let body = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let headers = vec![("transfer-encoding".to_string(), "chunked".to_string())];
        assert_eq!(read_body(&mut &body[..], &headers, true).unwrap(), b"abcde");
        assert!(read_request(&mut &b""[..]).unwrap().is_none());
    }
}
