//! The policies a fleet is pushed, one ECDS file per service, and the evaluator's answer for every proxy and
//! key under each of them (the oracle the fleet's answers are checked against).
//!
//! The rollout is sticky on `x-user`, so a key's subset is a function of the policy alone: after a push
//! converges, every answer can be checked exactly, and "still decided by the old policy" is a count, not a
//! statistic. frontend and recommendation split on the same key and percentage, so a key is in both
//! canaries or neither; forecast follows S5 (`source version=v2 -> v2`), which keeps chains unmixed even
//! while proxies disagree about the percentage during a push.

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};
use canary_eval::config::Config;
use canary_eval::{Policy, SimpleRequest, BUCKETS};

use super::layout::{Kind, SERVICES};
use crate::mesh::backends::FixedBucket;
use crate::mesh::policy::compile;

/// The sticky key header.
pub const KEY_HEADER: &str = "x-user";

/// The rollout at `percent` (0 leaves the split out: only testers see v2).
pub fn rollout(percent: u32) -> String {
    let split = |indent: &str| match percent {
        0 => String::new(),
        p => format!("{indent}{p}% v2 by header {KEY_HEADER}\n"),
    };
    format!(
        "# fleet rollout at {percent}%\nservice frontend {{\n  cookie user=tester -> v2\n{}  default v1\n}}\n\
         service forecast {{\n  source version=v2 -> v2\n  default v1\n}}\n\
         service recommendation {{\n{}  default v1\n}}\ndefault v1\n",
        split("  "),
        split("  ")
    )
}

/// The rollout at `percent` with `rules` more rules in front of frontend's split (`header x-tenant =
/// "tenant-I" -> v2`, exact values, which the evaluator indexes), for memory with a large policy.
pub fn many_rules(rules: usize, percent: u32) -> String {
    let mut text = format!("# fleet: {rules} generated rules\nservice frontend {{\n  cookie user=tester -> v2\n");
    for i in 0..rules {
        text.push_str(&format!("  header x-tenant = \"{}\" -> v2\n", tenant(i)));
    }
    text.push_str(&format!("  {percent}% v2 by header {KEY_HEADER}\n  default v1\n}}\n"));
    text + "service forecast {\n  source version=v2 -> v2\n  default v1\n}\ndefault v1\n"
}

/// The `x-tenant` value of generated rule `i`.
pub fn tenant(i: usize) -> String {
    format!("tenant-{i:05}")
}

/// Compiles policy text as `canaryc compile` does; errors come back as `FILE:LINE:COL: error: …`.
pub fn compile_policy(text: &str, label: &str) -> Result<Config> {
    compile(text, label)
}

/// One ECDS plugin configuration per service: the compiled policy with `settings.service` set, as
/// `canaryc manifest` writes it for a proxy of that service.
pub fn per_service(config: &Config) -> BTreeMap<&'static str, String> {
    SERVICES
        .iter()
        .map(|&service| {
            let mut c = config.clone();
            c.settings.service = Some(service.to_string());
            (service, canary_compiler::config_json(&c))
        })
        .collect()
}

/// The same files made unacceptable to the filter: a config version it does not support. Envoy's ECDS
/// rejects the update and the last good configuration keeps serving.
pub fn broken(files: &BTreeMap<&'static str, String>) -> Result<BTreeMap<&'static str, String>> {
    files
        .iter()
        .map(|(service, json)| {
            let bad = json.replacen("\"version\": 1", "\"version\": 2", 1);
            if bad == *json {
                bail!("the compiled policy for {service} has no `\"version\": 1` to break");
            }
            Ok((*service, bad))
        })
        .collect()
}

/// What a proxy answered, compactly: the direct response's `subset=…`.
pub type Answer = u8;
pub const NONE: Answer = 0;
pub const V1: Answer = 1;
pub const V2: Answer = 2;
/// Anything else (a body the routes never send).
pub const OTHER: Answer = 255;

/// Reads a direct response body (`subset=v2\n`).
pub fn answer_of(body: &str) -> Answer {
    match body.trim().strip_prefix("subset=") {
        Some("none") => NONE,
        Some("v1") => V1,
        Some("v2") => V2,
        _ => OTHER,
    }
}

pub fn answer_name(a: Answer) -> &'static str {
    match a {
        NONE => "none",
        V1 => "v1",
        V2 => "v2",
        _ => "other",
    }
}

/// The key sent as `x-user` for key number `i`.
pub fn key(i: usize) -> String {
    format!("user-{i}")
}

/// The evaluator's answer for every (proxy kind, key, tester or not) under one policy.
pub struct Oracle {
    kinds: Vec<Kind>,
    keys: usize,
    table: Vec<Answer>,
}

impl Oracle {
    /// Decides every combination with `canary_eval` (the evaluator the filter runs). Fails if any answer
    /// depends on the random draw: the checks built on the oracle need deterministic decisions.
    pub fn new(config: &Config, kinds: &[Kind], keys: usize) -> Result<Oracle> {
        let policy = Policy::new(config).map_err(|e| anyhow::anyhow!("{e}")).context("the oracle's policy")?;
        let mut distinct: Vec<Kind> = kinds.to_vec();
        distinct.sort();
        distinct.dedup();
        let mut table = Vec::with_capacity(distinct.len() * keys * 2);
        for &kind in &distinct {
            let service = policy.service_or_global(kind.service());
            for k in 0..keys {
                for tester in [false, true] {
                    let mut req = SimpleRequest::new().method("GET").host("frontend").header(":path", "/");
                    req = req.header(KEY_HEADER, key(k));
                    if tester {
                        req = req.cookie("user", "tester");
                    }
                    for (label, value) in kind.labels() {
                        req = req.source(&label, &value);
                    }
                    let mut answers = [0, BUCKETS - 1].map(|b| {
                        let d = policy.decide(service, &req, &mut FixedBucket(b));
                        d.subset.map_or(NONE, |s| answer_of(&format!("subset={}", policy.subset_name(s))))
                    });
                    answers.sort();
                    if answers[0] != answers[1] {
                        bail!("{kind} decides key {} by a random draw; the fleet checks need sticky decisions", key(k));
                    }
                    table.push(answers[0]);
                }
            }
        }
        Ok(Oracle { kinds: distinct, keys, table })
    }

    /// The evaluator's answer for `kind`, key number `key`, with or without the tester cookie.
    pub fn expect(&self, kind: Kind, key: usize, tester: bool) -> Answer {
        let k = self.kinds.binary_search(&kind).expect("the oracle was built for every kind of the fleet");
        self.table[(k * self.keys + key) * 2 + usize::from(tester)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::layout::ORDER;

    #[test]
    fn rollouts_compile_and_split_on_one_cohort() {
        let keys = 2000;
        let oracles: Vec<Oracle> = [0, 20, 50, 100]
            .iter()
            .map(|&p| Oracle::new(&compile_policy(&rollout(p), "rollout.canary").unwrap(), &ORDER, keys).unwrap())
            .collect();
        for (o, p) in oracles.iter().zip([0, 20, 50, 100]) {
            let canary = (0..keys).filter(|&k| o.expect(Kind::Edge, k, false) == V2).count();
            // Sticky buckets of 2000 keys: the share is binomial around p%.
            let (lo, hi) = crate::mesh::chain::binomial_bounds(keys, f64::from(p) / 100.0, 5.0);
            assert!((lo..=hi).contains(&canary), "{p}%: {canary} of {keys} keys in v2");
            for k in 0..keys {
                // The cohort is shared: recommendation splits like frontend; forecast follows the label.
                assert_eq!(o.expect(Kind::Forecast("v1"), k, false), o.expect(Kind::Edge, k, false));
                assert_eq!(o.expect(Kind::Frontend("v2"), k, false), V2);
                assert_eq!(o.expect(Kind::Frontend("v1"), k, false), V1);
                assert_eq!(o.expect(Kind::Edge, k, true), V2, "testers are always v2 at the edge");
            }
        }
        // Raising the percentage only moves keys from v1 to v2.
        for w in oracles.windows(2) {
            assert!(
                (0..keys).all(|k| w[0].expect(Kind::Edge, k, false) != V2 || w[1].expect(Kind::Edge, k, false) == V2)
            );
        }
    }

    #[test]
    fn broken_files_differ_and_many_rules_compile() {
        let files = per_service(&compile_policy(&rollout(20), "r.canary").unwrap());
        assert_eq!(files.len(), 3);
        assert!(files["forecast"].contains("\"service\": \"forecast\""), "{}", files["forecast"]);
        let bad = broken(&files).unwrap();
        assert!(bad.values().all(|j| j.contains("\"version\": 2")));
        let config = compile_policy(&many_rules(50, 50), "many.canary").unwrap();
        let o = Oracle::new(&config, &[Kind::Edge], 10).unwrap();
        assert!((0..10).any(|k| o.expect(Kind::Edge, k, false) == V1));
        assert_eq!(answer_of("subset=v2\n"), V2);
        assert_eq!(answer_of("nope"), OTHER);
    }
}
