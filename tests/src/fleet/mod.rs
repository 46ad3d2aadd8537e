//! A fleet of plain Envoys sharing one set of watched ECDS files, the way a fleet without a control plane
//! takes its canary policy from a ConfigMap: every proxy of a service watches the same file, and a push is one
//! atomic rename per service. Built on [`crate::reload`] (its bootstrap, ECDS resource and push); what a fleet
//! adds is many proxies with their own node labels ([`layout`]), measuring when each applies a push
//! ([`converge`]), load spread over all of them ([`load`]), the checks of their answers against the evaluator
//! ([`verdict`]), memory ([`rss`]), and the scenarios `make fleet` and `make soak` run ([`run`]).

pub mod client;
pub mod converge;
pub mod layout;
pub mod load;
pub mod policy;
pub mod rss;
pub mod run;
pub mod verdict;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::mesh::envoy::{find_envoy, find_wasm, free_port, spawn, wait_ready};
use crate::mesh::procs::Procs;
use crate::reload::{bootstrap, EcdsFile, ReloadOptions};
use layout::{Kind, SERVICES};

/// One Envoy of the fleet.
#[derive(Debug, Clone)]
pub struct Proxy {
    /// Process and log name, e.g. `03-frontend-v2-sidecar`.
    pub name: String,
    pub kind: Kind,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
}

/// A running fleet; dropping it stops every Envoy.
pub struct Fleet {
    pub proxies: Vec<Proxy>,
    files: BTreeMap<&'static str, EcdsFile>,
    procs: Procs,
}

impl Fleet {
    /// Writes each service's ECDS file from `files` (service → plugin configuration JSON), starts one Envoy per
    /// kind (all at once, then waits until each is ready) and returns once every one serves.
    pub fn start(kinds: &[Kind], files: &BTreeMap<&'static str, String>) -> Result<Fleet> {
        let (envoy, wasm) = (find_envoy()?, find_wasm()?);
        let mut procs = Procs::new("fleet")?;
        let mut ecds = BTreeMap::new();
        for service in SERVICES {
            let mut file = EcdsFile::new(&procs.dir().join(service), &wasm, service)?;
            file.push(files.get(service).with_context(|| format!("no ECDS configuration for {service}"))?)?;
            ecds.insert(service, file);
        }
        let mut proxies = Vec::new();
        for (i, &kind) in kinds.iter().enumerate() {
            let proxy = Proxy { name: format!("{i:02}-{kind}"), kind, listen: free_port()?, admin: free_port()? };
            let opts = ReloadOptions {
                node_labels: kind.labels(),
                service: kind.service().to_string(),
                ..ReloadOptions::default()
            };
            let yaml = bootstrap(&opts, proxy.listen, proxy.admin, &ecds[kind.service()].path);
            spawn(&mut procs, &envoy, &proxy.name, &yaml)?;
            proxies.push(proxy);
        }
        // Sixteen Envoys compiling the module at once on two shared cores can take longer than one Envoy's
        // readiness timeout: a proxy still running gets up to four.
        for p in &proxies {
            let mut tries = 1;
            while let Err(e) = wait_ready(&mut procs, &p.name, p.admin) {
                if tries == 4 || !procs.running(&p.name) {
                    return Err(e);
                }
                tries += 1;
            }
        }
        Ok(Fleet { proxies, files: ecds, procs })
    }

    /// Pushes one configuration per service: stages every file, then renames them in one after another
    /// (microseconds apart). Returns the instant just before the first rename: what push latency counts from.
    pub fn publish(&mut self, files: &BTreeMap<&'static str, String>) -> Result<Instant> {
        let mut staged = Vec::new();
        for (service, file) in &mut self.files {
            staged
                .push(file.stage(files.get(service).with_context(|| format!("no ECDS configuration for {service}"))?)?);
        }
        let at = Instant::now();
        for s in staged {
            s.publish()?;
        }
        Ok(at)
    }

    /// Each proxy's process id (for `/proc/PID/status`), `None` once it has exited.
    pub fn pids(&mut self) -> Vec<Option<u32>> {
        let names: Vec<String> = self.proxies.iter().map(|p| p.name.clone()).collect();
        names.iter().map(|n| self.procs.pid(n)).collect()
    }

    /// A proxy's whole log.
    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.procs.dir().join(format!("{}.log", self.proxies[i].name))).unwrap_or_default()
    }

    /// The tails of every log, for failure messages.
    pub fn tails(&self) -> String {
        self.procs.all_tails()
    }

    /// Size in bytes of each service's current ECDS file.
    pub fn file_sizes(&self) -> BTreeMap<&'static str, u64> {
        self.files.iter().map(|(s, f)| (*s, std::fs::metadata(&f.path).map(|m| m.len()).unwrap_or(0))).collect()
    }
}
