//! Load generation: keep-alive HTTP and one-line TCP exchanges from a few threads, so the thousands of requests
//! a weight test needs take seconds.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use canary_weather::http::{Client, Response};

/// Parallel clients: enough to keep one Envoy worker busy without starving the other processes of 2 cores.
pub const CONCURRENCY: usize = 8;

/// One kind of request, sent many times.
#[derive(Debug, Clone, Default)]
pub struct HttpRequest {
    pub path: String,
    pub headers: Vec<(String, String)>,
}

impl HttpRequest {
    pub fn get(path: &str) -> Self {
        HttpRequest { path: path.to_string(), headers: Vec::new() }
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// Splits `n` jobs over [`CONCURRENCY`] threads, each running `job(count)`, and concatenates the results.
fn fan_out<T: Send>(n: usize, job: impl Fn(usize) -> Result<Vec<T>> + Sync) -> Result<Vec<T>> {
    let threads = CONCURRENCY.min(n.max(1));
    let results: Vec<Result<Vec<T>>> = thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                let count = n / threads + usize::from(i < n % threads);
                let job = &job;
                s.spawn(move || job(count))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a client thread panicked")))).collect()
    });
    let mut all = Vec::with_capacity(n);
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

/// Sends `request` `n` times to `addr` over keep-alive connections and returns every response.
pub fn http_many(addr: SocketAddr, request: &HttpRequest, n: usize) -> Result<Vec<Response>> {
    let headers: Vec<(&str, &str)> = request.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    fan_out(n, |count| {
        let mut client = Client::new(addr);
        (0..count)
            .map(|_| client.get(&request.path, &headers).with_context(|| format!("GET {} via {addr}", request.path)))
            .collect()
    })
}

/// Opens `n` TCP connections to `addr`, one after another per thread; on each sends one line and returns the
/// line that comes back. A connection closed without an answer is an error (e.g. an unknown cluster).
pub fn tcp_many(addr: SocketAddr, n: usize) -> Result<Vec<String>> {
    fan_out(n, |count| (0..count).map(|i| tcp_once(addr, &format!("hello {i}"))).collect())
}

/// One connection, one line each way.
pub fn tcp_once(addr: SocketAddr, line: &str) -> Result<String> {
    let mut stream = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_nodelay(true)?;
    stream.write_all(format!("{line}\n").as_bytes())?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).with_context(|| format!("reading from {addr}"))?;
    if answer.is_empty() {
        bail!("{addr} closed the connection without answering `{line}`");
    }
    Ok(answer.trim_end().to_string())
}
