//! The one HTTP call every source makes: a blocking `GET` with a deadline, whose failure reads as the reason
//! an operator needs ("connection refused", "timed out after 1s", "HTTP 503"). ureq with its default
//! features off: plain http, no TLS stack to build, since admin listeners and an in-cluster Prometheus are
//! reached over http.

use std::io::ErrorKind;
use std::time::Duration;

/// Why a `GET` gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Nothing answered: refused, timed out, reset.
    Unreachable(String),
    /// An answer, but not 200 (the body's start is kept: Prometheus explains errors there).
    Status(u16, String),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Unreachable(why) => write!(f, "unreachable ({why})"),
            Failure::Status(code, body) if body.is_empty() => write!(f, "answered HTTP {code}"),
            Failure::Status(code, body) => write!(f, "answered HTTP {code}: {body}"),
        }
    }
}

/// A client with one deadline for the whole exchange.
#[derive(Clone)]
pub struct Client {
    agent: ureq::Agent,
    timeout: Duration,
}

impl Client {
    /// `use_env_proxy`: honour `HTTP_PROXY`/`NO_PROXY` (a remote Prometheus may sit behind one); admin
    /// listeners are dialled directly.
    pub fn new(timeout: Duration, use_env_proxy: bool) -> Client {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .user_agent("canary-rollout");
        if !use_env_proxy {
            config = config.proxy(None);
        }
        Client { agent: config.build().new_agent(), timeout }
    }

    /// `GET url?query`; the body of a 200 answer.
    pub fn get(&self, url: &str, query: &[(&str, &str)]) -> Result<String, Failure> {
        let mut request = self.agent.get(url);
        for (k, v) in query {
            request = request.query(*k, *v);
        }
        let mut response = request.call().map_err(|e| self.describe(e))?;
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().map_err(|e| self.describe(e));
        match (status, body) {
            (200, body) => body,
            (code, body) => {
                let text: String = body.unwrap_or_default().trim().chars().take(300).collect();
                Err(Failure::Status(code, text))
            }
        }
    }

    fn describe(&self, error: ureq::Error) -> Failure {
        let why = match error {
            ureq::Error::Timeout(_) => format!("timed out after {}", seconds(self.timeout)),
            ureq::Error::Io(e) => match e.kind() {
                ErrorKind::ConnectionRefused => "connection refused".to_string(),
                ErrorKind::TimedOut | ErrorKind::WouldBlock => format!("timed out after {}", seconds(self.timeout)),
                ErrorKind::ConnectionReset => "connection reset".to_string(),
                _ => e.to_string(),
            },
            other => other.to_string(),
        };
        Failure::Unreachable(why)
    }
}

fn seconds(d: Duration) -> String {
    format!("{}s", d.as_secs_f64())
}
