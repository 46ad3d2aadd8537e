//! The simulated users and which of them the canary serves at a given weight, decided by the one
//! evaluator: the policy `service s { W% v2 by cookie user; default v1 }` is built as a `canary_eval::Config`
//! (the compiler is not a dependency of this crate) and every user's arm is `Policy::decide` on a request
//! carrying the cookie `user=user-NNNNNN`: the code the filter runs. Raising W therefore moves users only
//! from v1 to v2, because the evaluator's sticky buckets say so, not because the simulator assumes it
//! ([`Population::moved_back`] counts the exceptions, and the tests check there are none).
//!
//! A cohort depends on the weight only, never on the seed, so it is computed once per weight and shared
//! by every run (and thread) of a population.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use canary_eval::config::{Action, Rule, RuleSet, Service, Settings, Share, Split, StickyKey};
use canary_eval::{Config, Policy, SimpleRequest, BUCKETS, CONFIG_VERSION};
use rand::rngs::SmallRng;
use rand::SeedableRng;

/// The users the canary serves at one weight.
#[derive(Debug)]
pub struct Cohort {
    /// `members[i]`: user `i` is routed to v2.
    members: Vec<bool>,
    /// How many are.
    pub size: u64,
}

/// A fixed population of users `user-000000` … and their cohorts by weight (in basis points).
#[derive(Debug)]
pub struct Population {
    size: u64,
    cohorts: Mutex<HashMap<u32, Arc<Cohort>>>,
}

/// `max(1000, 200·rate)` users: at 1,000 req/s, 200,000 users, each seen every few minutes.
pub fn population_size(rate: f64) -> u64 {
    let scaled = if rate.is_finite() && rate > 0.0 { (rate * 200.0).min(1e7) as u64 } else { 0 };
    scaled.max(1000)
}

/// A weight in percent as the policy's basis points (0.01 % resolution, as the language has).
pub fn basis_points(weight: f64) -> u32 {
    if weight >= 100.0 {
        BUCKETS
    } else if weight > 0.0 {
        ((weight * 100.0).round() as u32).min(BUCKETS)
    } else {
        0
    }
}

impl Population {
    pub fn new(size: u64) -> Population {
        Population { size, cohorts: Mutex::new(HashMap::new()) }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The canary's users at `bp` basis points, computed once through `Policy::decide`.
    pub fn cohort(&self, bp: u32) -> Result<Arc<Cohort>, String> {
        if let Some(c) = self.cohorts.lock().map_err(|_| "cohort cache poisoned")?.get(&bp) {
            return Ok(Arc::clone(c));
        }
        let cohort = Arc::new(self.decide_all(bp)?);
        let mut cache = self.cohorts.lock().map_err(|_| "cohort cache poisoned")?;
        Ok(Arc::clone(cache.entry(bp).or_insert(cohort)))
    }

    /// Users in the cohort at `from` but not at `to`: those a raise from `from` to `to` would move back to
    /// the baseline (0 for every raise, by the evaluator's bucket ranges).
    pub fn moved_back(&self, from: u32, to: u32) -> Result<u64, String> {
        let (a, b) = (self.cohort(from)?, self.cohort(to)?);
        Ok(a.members.iter().zip(b.members.iter()).filter(|(in_a, in_b)| **in_a && !**in_b).count() as u64)
    }

    fn decide_all(&self, bp: u32) -> Result<Cohort, String> {
        let size = usize::try_from(self.size).map_err(|e| e.to_string())?;
        if bp == 0 {
            return Ok(Cohort { members: vec![false; size], size: 0 });
        }
        let policy = Policy::new(&sticky_split(bp)).map_err(|e| e.to_string())?;
        let service = policy.service("s").ok_or("the simulated policy lost its service")?;
        // A sticky split never draws; the evaluator's signature still wants a generator.
        let mut rng = SmallRng::seed_from_u64(0);
        let mut members = Vec::with_capacity(size);
        for i in 0..size {
            let req = SimpleRequest::new().cookie("user", &user_id(i));
            let decision = policy.decide(service, &req, &mut rng);
            members.push(decision.subset.map(|s| policy.subset_name(s)) == Some("v2"));
        }
        let count = members.iter().filter(|m| **m).count() as u64;
        Ok(Cohort { members, size: count })
    }
}

/// `user-000042`: the cookie value of user 42.
pub fn user_id(i: usize) -> String {
    format!("user-{i:06}")
}

/// `service s { W% v2 by cookie user; default v1 }` as the compiler would lower it.
fn sticky_split(bp: u32) -> Config {
    let split =
        Split { to: vec![Share { subset: "v2".into(), weight: bp }], by: Some(StickyKey::Cookie("user".into())) };
    Config {
        version: CONFIG_VERSION,
        global: RuleSet::default(),
        services: vec![Service {
            name: "s".into(),
            protocol: Default::default(),
            rules: RuleSet {
                rules: vec![Rule { line: 1, when: None, then: Action::Split(split) }],
                default: Some("v1".into()),
            },
        }],
        settings: Settings::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cohorts_grow_and_never_shrink() {
        let pop = Population::new(5000);
        let steps = [100, 500, 2000, 5000, 10_000];
        let mut last = 0;
        for pair in steps.windows(2) {
            if let [a, b] = pair {
                assert_eq!(pop.moved_back(*a, *b).unwrap(), 0);
            }
        }
        for bp in steps {
            let c = pop.cohort(bp).unwrap();
            // The cohort's share is the weight's to within 5σ of a Binomial(5000, w) draw of hashes.
            let w = f64::from(bp) / 10_000.0;
            let sd = (5000.0 * w * (1.0 - w)).sqrt();
            assert!((c.size as f64 - 5000.0 * w).abs() <= 5.0 * sd + 1e-9, "{bp}: {}", c.size);
            assert!(c.size >= last);
            last = c.size;
        }
        // Lowering does move users back: the check can fail.
        assert!(pop.moved_back(2000, 500).unwrap() > 0);
    }

    #[test]
    fn weights_to_basis_points() {
        assert_eq!(basis_points(1.0), 100);
        assert_eq!(basis_points(12.345), 1235);
        assert_eq!(basis_points(f64::NAN), 0);
        assert_eq!(basis_points(250.0), 10_000);
        assert_eq!(population_size(1.0), 1000);
        assert_eq!(population_size(1000.0), 200_000);
    }
}
