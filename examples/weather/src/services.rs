//! The stand-in services. Each HTTP answer is one line naming every version on the request's path, e.g.
//! `frontend=v2 button=blue forecast=v2 recommendation=v1`, so a test reads the whole call chain from the
//! response the ingress returns.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;

use crate::http::{self, Client, Request};

/// Headers a frontend passes on to forecast, as the real app does: routing rules downstream may look at them.
const FORWARDED: [&str; 2] = ["cookie", "user-agent"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Web page: answers with its version and button colour, and calls forecast.
    Frontend,
    /// API: v2 also calls recommendation.
    Forecast,
    Recommendation,
    /// TCP: answers each line with `one <line>` (v1) or `two <line>` (v2).
    TcpEcho,
}

impl Role {
    pub fn parse(name: &str) -> Option<Role> {
        match name {
            "frontend" => Some(Role::Frontend),
            "forecast" => Some(Role::Forecast),
            "recommendation" => Some(Role::Recommendation),
            "tcp-echo" => Some(Role::TcpEcho),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Role::Frontend => "frontend",
            Role::Forecast => "forecast",
            Role::Recommendation => "recommendation",
            Role::TcpEcho => "tcp-echo",
        }
    }

    /// The service this role calls, if it calls one in this version.
    pub fn calls(self, version: &str) -> Option<Role> {
        match (self, version) {
            (Role::Frontend, _) => Some(Role::Forecast),
            (Role::Forecast, "v1") => None,
            (Role::Forecast, _) => Some(Role::Recommendation),
            _ => None,
        }
    }
}

/// One service instance: what it is and where it listens; `upstream` is its sidecar's outbound listener.
#[derive(Debug, Clone)]
pub struct Service {
    pub role: Role,
    pub version: String,
    pub listen: SocketAddr,
    pub upstream: Option<SocketAddr>,
}

impl Service {
    /// Serves forever, one thread per connection (connections are keep-alive and few).
    pub fn run(&self) -> io::Result<()> {
        if self.role.calls(&self.version).is_some() && self.upstream.is_none() {
            return Err(io::Error::other(format!("{} {} needs --upstream", self.role.name(), self.version)));
        }
        let listener = TcpListener::bind(self.listen)?;
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let service = self.clone();
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let _ = if service.role == Role::TcpEcho { service.echo(stream) } else { service.http(stream) };
            });
        }
        Ok(())
    }

    fn echo(&self, stream: TcpStream) -> io::Result<()> {
        let word = match self.version.as_str() {
            "v1" => "one",
            "v2" => "two",
            other => other,
        };
        let mut writer = stream.try_clone()?;
        for line in BufReader::new(stream).lines() {
            writer.write_all(format!("{word} {}\n", line?).as_bytes())?;
        }
        Ok(())
    }

    fn http(&self, stream: TcpStream) -> io::Result<()> {
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut upstream = self.upstream.map(Client::new);
        while let Some(request) = http::read_request(&mut reader)? {
            let (status, body) = self.answer(&request, upstream.as_mut());
            http::write_response(&mut writer, status, &body)?;
            if request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                break;
            }
        }
        Ok(())
    }

    /// This hop's own part of the chain, then the next hop's answer.
    fn answer(&self, request: &Request, upstream: Option<&mut Client>) -> (u16, String) {
        let mut line = format!("{}={}", self.role.name(), self.version);
        if self.role == Role::Frontend {
            line.push_str(if self.version == "v1" { " button=green" } else { " button=blue" });
        }
        let (Some(next), Some(client)) = (self.role.calls(&self.version), upstream) else {
            return (200, line);
        };
        let forwarded: Vec<(&str, &str)> = FORWARDED
            .iter()
            .filter_map(|name| request.header(name).map(|value| (*name, value)))
            .chain([("host", next.name())])
            .collect();
        match client.get(&format!("/{}", next.name()), &forwarded) {
            Ok(reply) if reply.status == 200 => (200, format!("{line} {}", reply.body.trim())),
            Ok(reply) => (502, format!("{line} {}=error({}: {})", next.name(), reply.status, reply.body.trim())),
            Err(err) => (502, format!("{line} {}=error({err})", next.name())),
        }
    }
}
