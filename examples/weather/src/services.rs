//! The stand-in services. Each HTTP answer is one line naming every version on the request's path, e.g.
//! `frontend=v2 button=blue forecast=v2 recommendation=v1`, so a test reads the whole call chain from the
//! response the ingress returns.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use crate::faults::Faults;
use crate::http::{self, Client, Request};

/// The control path of [`Faults`]: answered by the instance itself, never subject to its faults.
pub const CONTROL_PATH: &str = "/_control";

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
    /// Serves forever without faults, one thread per connection (connections are keep-alive and few).
    pub fn run(&self) -> io::Result<()> {
        self.run_with_faults(Arc::new(Faults::default()))
    }

    /// Serves forever, injecting `faults` (which the caller may keep and change while it runs).
    pub fn run_with_faults(&self, faults: Arc<Faults>) -> io::Result<()> {
        self.serve(TcpListener::bind(self.listen)?, faults)
    }

    /// Serves forever on a listener already bound (tests bind port 0 and read the port back, race-free).
    pub fn serve(&self, listener: TcpListener, faults: Arc<Faults>) -> io::Result<()> {
        if self.role.calls(&self.version).is_some() && self.upstream.is_none() {
            return Err(io::Error::other(format!("{} {} needs --upstream", self.role.name(), self.version)));
        }
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (service, faults) = (self.clone(), faults.clone());
            thread::spawn(move || {
                let _ = stream.set_nodelay(true);
                let _ =
                    if service.role == Role::TcpEcho { service.echo(stream) } else { service.http(stream, &faults) };
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

    fn http(&self, stream: TcpStream, faults: &Faults) -> io::Result<()> {
        let mut writer = stream.try_clone()?;
        let mut reader = BufReader::new(stream);
        let mut upstream = self.upstream.map(Client::new);
        while let Some(request) = http::read_request(&mut reader)? {
            let (status, body) = self.respond(&request, upstream.as_mut(), faults);
            http::write_response(&mut writer, status, &body)?;
            if request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
                break;
            }
        }
        Ok(())
    }

    /// The control path, or the answer with the faults applied: the extra latency first (a slow canary is slow
    /// whether or not it then fails), then the failure draw, whose 500 still names this hop so a client knows
    /// which version failed (`forecast=v2 fault=500`).
    fn respond(&self, request: &Request, upstream: Option<&mut Client>, faults: &Faults) -> (u16, String) {
        if let Some(rest) = request.path.strip_prefix(CONTROL_PATH) {
            return control(request, rest, faults);
        }
        let delay = faults.extra_latency();
        if !delay.is_zero() {
            thread::sleep(delay);
        }
        if faults.draw_failure() {
            return (500, format!("{}={} fault=500", self.role.name(), self.version));
        }
        self.answer(request, upstream)
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

/// `GET /_control` reports the faults; `POST /_control?fail_percent=P&extra_latency_ms=MS` changes them (400 and
/// nothing changed on a bad value).
fn control(request: &Request, rest: &str, faults: &Faults) -> (u16, String) {
    let query = match rest {
        "" => "",
        _ => match rest.strip_prefix('?') {
            Some(q) => q,
            None => return (404, format!("no such path {}", request.path)),
        },
    };
    match request.method.as_str() {
        "GET" if query.is_empty() => (200, faults.describe()),
        "POST" => match faults.apply_query(query) {
            Ok(()) => (200, faults.describe()),
            Err(err) => (400, err),
        },
        _ => (405, format!("{CONTROL_PATH}: GET to read, POST ?fail_percent=P&extra_latency_ms=MS to set")),
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// A stand-in on an ephemeral loopback port, serving from a thread of the test.
    fn start(role: Role, version: &str, upstream: Option<SocketAddr>, faults: Arc<Faults>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let listen = listener.local_addr().unwrap();
        let service = Service { role, version: version.into(), listen, upstream };
        thread::spawn(move || service.serve(listener, faults));
        listen
    }

    /// 2,000 requests at 10 %: mean 200, σ = √(2000·0.1·0.9) ≈ 13.4, 5σ bounds 133..=267.
    #[test]
    fn a_faulty_instance_fails_its_share_and_names_itself() {
        let faults = Arc::new(Faults::with_seed(3));
        faults.set_fail_percent(10.0).unwrap();
        let addr = start(Role::Forecast, "v1", None, faults);
        let mut client = Client::new(addr);
        let answers: Vec<_> = (0..2_000).map(|_| client.get("/", &[]).unwrap()).collect();
        let failed: Vec<_> = answers.iter().filter(|r| r.status == 500).collect();
        assert!((133..=267).contains(&failed.len()), "{} of 2000 failed at 10 %", failed.len());
        assert!(failed.iter().all(|r| r.body == "forecast=v1 fault=500"), "{:?}", failed[0]);
        assert!(answers.iter().filter(|r| r.status != 500).all(|r| r.status == 200 && r.body == "forecast=v1"));
    }

    /// The control path turns a good instance bad and back while it serves; latency is added to every answer.
    #[test]
    fn control_path_changes_faults_at_run_time() {
        let recommendation = start(Role::Recommendation, "v1", None, Arc::new(Faults::default()));
        let faults = Arc::new(Faults::default());
        let addr = start(Role::Forecast, "v2", Some(recommendation), faults.clone());
        let mut client = Client::new(addr);
        let ok = client.get("/", &[]).unwrap();
        assert_eq!((ok.status, ok.body.as_str()), (200, "forecast=v2 recommendation=v1"));

        let set = client.request("POST", "/_control?fail_percent=100&extra_latency_ms=60", &[]).unwrap();
        assert_eq!((set.status, set.body.as_str()), (200, "fail_percent=100 extra_latency_ms=60"));
        assert_eq!(faults.fail_percent(), 100.0, "the caller's handle sees the change");
        let started = Instant::now();
        let bad = client.get("/", &[]).unwrap();
        assert!(started.elapsed() >= Duration::from_millis(60), "{:?}", started.elapsed());
        assert_eq!((bad.status, bad.body.as_str()), (500, "forecast=v2 fault=500"));

        let refused = client.request("POST", "/_control?fail_percent=200", &[]).unwrap();
        assert_eq!(refused.status, 400, "{}", refused.body);
        assert_eq!(client.get("/_control", &[]).unwrap().body, "fail_percent=100 extra_latency_ms=60");
        assert_eq!(client.request("PUT", "/_control", &[]).unwrap().status, 405);
        assert_eq!(client.get("/_controlx", &[]).unwrap().status, 404);

        client.request("POST", "/_control?fail_percent=0&extra_latency_ms=0", &[]).unwrap();
        assert!((0..50).all(|_| client.get("/", &[]).unwrap().status == 200));
    }
}
