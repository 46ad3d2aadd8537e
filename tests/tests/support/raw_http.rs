//! One HTTP/1.1 exchange written byte for byte (headers a client library would refuse or normalise: invalid
//! UTF-8, repeated lines), for the tests that probe what Envoy does with such requests. Included with `#[path]`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{bail, Result};

/// Sends `raw` (a whole request, `connection: close` included) and returns the response's head and body. Reads
/// the head and then `content-length` bytes: waiting for the close would cost Envoy's delayed-close timeout
/// (1 s) per request.
pub fn exchange(listen: SocketAddr, raw: &[u8]) -> Result<(String, String)> {
    let mut stream = TcpStream::connect(listen)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.write_all(raw)?;
    let mut response = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&response).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return Ok((head.to_string(), body.to_string()));
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            bail!("Envoy closed the connection mid-response: {text:?}");
        }
        response.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
}
