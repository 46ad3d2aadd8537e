//! Load spread over every proxy of a fleet: closed-loop threads on kept-alive connections (one per proxy
//! per thread), sticky keys drawn at random (one request in twenty from a tester), and S5 chains walked
//! hop by hop across proxies. Every request is recorded (proxy, key, send time, status, answer) so the
//! verdict can check each one against the policy that was in force when it was sent.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Instant;

use super::client::Conn;
use super::layout::Kind;
use super::policy::{answer_of, key, Answer, KEY_HEADER, V1, V2};
use super::Proxy;

/// One request as sent and answered.
#[derive(Debug, Clone, Copy)]
pub struct Record {
    pub proxy: u16,
    pub key: u32,
    pub tester: bool,
    /// Microseconds from the load's epoch to just before the request was written.
    pub sent_us: u64,
    /// 0: no answer (connection error).
    pub status: u16,
    pub answer: Answer,
}

/// One S5 chain: the subsets chosen for frontend (at an edge), forecast (at that frontend version's
/// sidecar) and, when forecast is v2, recommendation (at forecast v2's sidecar).
#[derive(Debug, Clone, Copy)]
pub struct ChainRecord {
    pub frontend: Answer,
    pub forecast: Answer,
    pub recommendation: Option<Answer>,
}

impl ChainRecord {
    /// Frontend and forecast on different versions: what S5 promises never happens.
    pub fn is_mixed(&self) -> bool {
        self.frontend != self.forecast
    }
}

#[derive(Debug, Default)]
pub struct LoadReport {
    pub records: Vec<Record>,
    pub chains: Vec<ChainRecord>,
    /// Chains cut short by an error or an unexpected answer (their requests are in `records`).
    pub broken_chains: u64,
    /// The first few connection errors, for the report.
    pub errors: Vec<String>,
    /// Connections opened in all (the load opens one per thread and proxy; more means some were closed).
    pub connects: u64,
}

/// Running load; [`Load::stop`] ends it and collects the records.
pub struct Load {
    stop: Arc<AtomicBool>,
    handles: Vec<JoinHandle<LoadReport>>,
}

/// A tiny deterministic generator (splitmix64): reproducible runs, no dependency on rand's API.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Everything a thread needs to send and record.
struct Sender {
    conns: Vec<Conn>,
    epoch: Instant,
    report: LoadReport,
}

impl Sender {
    fn new(proxies: &[Proxy], epoch: Instant) -> Sender {
        Sender { conns: proxies.iter().map(|p| Conn::new(p.listen)).collect(), epoch, report: LoadReport::default() }
    }

    /// Sends one request to proxy `p`; returns its answer if it was a 200.
    fn send(&mut self, p: usize, k: usize, tester: bool) -> Option<Answer> {
        let user = key(k);
        let mut headers = vec![(KEY_HEADER, user.as_str())];
        if tester {
            headers.push(("cookie", "user=tester"));
        }
        let sent_us = self.epoch.elapsed().as_micros() as u64;
        let (status, answer) = match self.conns[p].get("/", &headers) {
            Ok((status, body)) => (status, answer_of(&body)),
            Err(e) => {
                if self.report.errors.len() < 10 {
                    self.report.errors.push(format!("{e:#}"));
                }
                (0, 0)
            }
        };
        self.report.records.push(Record { proxy: p as u16, key: k as u32, tester, sent_us, status, answer });
        (status == 200).then_some(answer)
    }

    fn finish(mut self) -> LoadReport {
        self.report.connects = self.conns.iter().map(|c| c.connects).sum();
        self.report
    }
}

impl Load {
    /// Starts `threads` request threads (each cycling over every proxy) and `chain_threads` chain walkers.
    pub fn start(proxies: &[Proxy], keys: usize, threads: usize, chain_threads: usize, epoch: Instant) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::new();
        for t in 0..threads {
            let (proxies, stop) = (proxies.to_vec(), Arc::clone(&stop));
            handles.push(thread::spawn(move || {
                let mut rng = Rng(0x5eed ^ t as u64);
                let mut s = Sender::new(&proxies, epoch);
                let mut p = t;
                while !stop.load(Ordering::Relaxed) {
                    p = (p + 1) % proxies.len();
                    let (k, tester) = (rng.below(keys), rng.below(20) == 0);
                    s.send(p, k, tester);
                }
                s.finish()
            }));
        }
        for t in 0..chain_threads {
            let (proxies, stop) = (proxies.to_vec(), Arc::clone(&stop));
            handles.push(thread::spawn(move || {
                let mut rng = Rng(0xc4a1 ^ t as u64);
                let mut s = Sender::new(&proxies, epoch);
                let of =
                    |kind: Kind| -> Vec<usize> { (0..proxies.len()).filter(|&i| proxies[i].kind == kind).collect() };
                let edges = of(Kind::Edge);
                let frontend = [of(Kind::Frontend("v1")), of(Kind::Frontend("v2"))];
                let forecast_v2 = of(Kind::Forecast("v2"));
                if edges.is_empty() || frontend.iter().any(Vec::is_empty) {
                    return s.finish();
                }
                while !stop.load(Ordering::Relaxed) {
                    let (k, tester) = (rng.below(keys), rng.below(10) == 0);
                    let pick = |rng: &mut Rng, set: &[usize]| set[rng.below(set.len())];
                    let Some(f) = s.send(pick(&mut rng, &edges), k, tester) else {
                        s.report.broken_chains += 1;
                        continue;
                    };
                    let Some(sidecars) = [V1, V2].iter().position(|&v| v == f).map(|i| &frontend[i]) else {
                        s.report.broken_chains += 1;
                        continue;
                    };
                    let Some(g) = s.send(pick(&mut rng, sidecars), k, tester) else {
                        s.report.broken_chains += 1;
                        continue;
                    };
                    let recommendation = if g == V2 && !forecast_v2.is_empty() {
                        let r = s.send(pick(&mut rng, &forecast_v2), k, tester);
                        if r.is_none() {
                            s.report.broken_chains += 1;
                            continue;
                        }
                        r
                    } else {
                        None
                    };
                    s.report.chains.push(ChainRecord { frontend: f, forecast: g, recommendation });
                }
                s.finish()
            }));
        }
        Load { stop, handles }
    }

    /// Stops every thread and merges their records (sorted by send time).
    pub fn stop(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = LoadReport::default();
        for h in self.handles {
            let r = h.join().unwrap_or_default();
            all.records.extend(r.records);
            all.chains.extend(r.chains);
            all.broken_chains += r.broken_chains;
            all.errors.extend(r.errors);
            all.connects += r.connects;
        }
        all.records.sort_by_key(|r| r.sent_us);
        all
    }
}

/// Sends every key (no tester cookie) to every proxy, one thread per proxy; returns each proxy's
/// (status, answer) per key. What sticky consistency is checked on.
pub fn sweep(proxies: &[Proxy], keys: usize) -> Vec<Vec<(u16, Answer)>> {
    thread::scope(|s| {
        let handles: Vec<_> = proxies
            .iter()
            .map(|p| {
                s.spawn(move || {
                    let mut conn = Conn::new(p.listen);
                    (0..keys)
                        .map(|k| match conn.get("/", &[(KEY_HEADER, key(k).as_str())]) {
                            Ok((status, body)) => (status, answer_of(&body)),
                            Err(_) => (0, 0),
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    })
}
