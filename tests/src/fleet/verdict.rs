//! Checking a fleet's answers against the evaluator: every recorded request against the policy in force on
//! its proxy when it was sent, a sweep of keys across every proxy, and summary statistics.
//!
//! A push opens a window on each proxy, from the rename until its counter shows the push (see `converge`):
//! inside it either policy may answer; after it only the new one may. An answer after the window that the
//! new policy would not give is *stale* if the previous policy gives it, else *wrong*.

use super::converge::Outcome;
use super::layout::Kind;
use super::policy::{Answer, Oracle};

/// One push as the fleet took it.
#[derive(Debug, Clone)]
pub struct Step {
    /// Microseconds from the load's epoch to the rename.
    pub published_us: u64,
    /// The policy in force once the push has landed (unchanged for a refused push).
    pub policy: usize,
    /// Per proxy: how it took the push and when that was seen (µs from the epoch).
    pub landed: Vec<(Outcome, u64)>,
}

/// Which policy each proxy ran when.
#[derive(Debug, Clone)]
pub struct Timeline {
    pub initial: usize,
    pub steps: Vec<Step>,
}

/// The policy a request sent at `sent_us` to proxy `p` must meet: `(current, previous, in_window)`.
fn in_force(t: &Timeline, p: usize, sent_us: u64) -> (usize, Option<usize>, bool) {
    let Some(k) = t.steps.iter().rposition(|s| s.published_us <= sent_us) else { return (t.initial, None, false) };
    let previous = if k == 0 { t.initial } else { t.steps[k - 1].policy };
    let step = &t.steps[k];
    let window = sent_us < step.landed[p].1;
    (step.policy, Some(previous), window)
}

/// What the recorded requests show.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    pub requests: u64,
    /// Answered, but not with 2xx.
    pub non_2xx: u64,
    /// No answer at all (connect, read or write error).
    pub errors: u64,
    /// Sent inside a push window (either policy allowed).
    pub in_window: u64,
    /// Sent after the proxy showed the push (only the current policy allowed).
    pub converged: u64,
    /// After convergence, answered as the previous policy decides and not as the current one.
    pub stale: u64,
    /// Answered as neither the current nor (inside a window) the previous policy decides.
    pub wrong: u64,
}

pub fn check(records: &[super::load::Record], t: &Timeline, oracles: &[Oracle], kinds: &[Kind]) -> Verdict {
    let mut v = Verdict::default();
    for r in records {
        v.requests += 1;
        match r.status {
            0 => v.errors += 1,
            200..=299 => {}
            _ => v.non_2xx += 1,
        }
        if r.status != 200 {
            continue;
        }
        let p = usize::from(r.proxy);
        let expect = |policy: usize| oracles[policy].expect(kinds[p], r.key as usize, r.tester);
        let (current, previous, window) = in_force(t, p, r.sent_us);
        let now = expect(current);
        let before = previous.map(expect);
        if window {
            v.in_window += 1;
            if r.answer != now && Some(r.answer) != before {
                v.wrong += 1;
            }
        } else {
            v.converged += 1;
            if r.answer != now {
                if Some(r.answer) == before {
                    v.stale += 1;
                } else {
                    v.wrong += 1;
                }
            }
        }
    }
    v
}

/// What one sweep (every key to every proxy) shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Consistency {
    pub keys: usize,
    pub proxies: usize,
    /// Requests not answered 200.
    pub failed: u64,
    /// Keys for which two proxies of the same kind (same service, same labels) answered differently.
    pub disagreements: u64,
    /// Answers that differ from the evaluator's.
    pub mismatches: u64,
}

pub fn consistency(answers: &[Vec<(u16, Answer)>], kinds: &[Kind], oracle: &Oracle, keys: usize) -> Consistency {
    let mut c = Consistency { keys, proxies: answers.len(), ..Consistency::default() };
    for k in 0..keys {
        let mut seen: Vec<(Kind, Answer)> = Vec::new();
        let mut disagree = false;
        for (p, per_key) in answers.iter().enumerate() {
            let Some(&(status, answer)) = per_key.get(k) else {
                c.failed += 1;
                continue;
            };
            if status != 200 {
                c.failed += 1;
                continue;
            }
            if answer != oracle.expect(kinds[p], k, false) {
                c.mismatches += 1;
            }
            match seen.iter().find(|(kind, _)| *kind == kinds[p]) {
                Some(&(_, first)) => disagree |= first != answer,
                None => seen.push((kinds[p], answer)),
            }
        }
        c.disagreements += u64::from(disagree);
    }
    c
}

/// Nearest-rank percentile `q` (0–100) of `values` (sorted here); 0 for none.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((q / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    v[rank.min(v.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::layout::ORDER;
    use crate::fleet::load::Record;
    use crate::fleet::policy::{compile_policy, rollout, V1, V2};

    fn oracles() -> Vec<Oracle> {
        [0, 100]
            .iter()
            .map(|&p| Oracle::new(&compile_policy(&rollout(p), "r.canary").unwrap(), &ORDER, 10).unwrap())
            .collect()
    }

    fn rec(proxy: u16, sent_us: u64, answer: Answer) -> Record {
        Record { proxy, key: 3, tester: false, sent_us, status: 200, answer }
    }

    #[test]
    fn answers_are_judged_by_the_policy_in_force_when_sent() {
        let kinds = vec![Kind::Edge, Kind::Edge];
        // One push at 100 µs from 0% (all v1) to 100% (all v2); proxy 0 shows it at 150, proxy 1 at 300.
        let t = Timeline {
            initial: 0,
            steps: vec![Step {
                published_us: 100,
                policy: 1,
                landed: vec![(Outcome::Applied, 150), (Outcome::Applied, 300)],
            }],
        };
        let records = [
            rec(0, 50, V1),  // before the push: fine
            rec(0, 120, V1), // in the window: old allowed
            rec(1, 200, V2), // in the window: new allowed
            rec(0, 200, V1), // after proxy 0 converged: stale
            rec(1, 400, V2), // converged: fine
            rec(1, 400, 0),  // converged, answered `none`: wrong
            Record { status: 503, ..rec(1, 500, V2) },
            Record { status: 0, ..rec(1, 500, V2) },
        ];
        let v = check(&records, &t, &oracles(), &kinds);
        assert_eq!(v, Verdict { requests: 8, non_2xx: 1, errors: 1, in_window: 2, converged: 4, stale: 1, wrong: 1 });
        // A refused push keeps the policy: after it only the old answers are right.
        let refused = Timeline {
            initial: 1,
            steps: vec![Step { published_us: 10, policy: 1, landed: vec![(Outcome::Refused, 20); 2] }],
        };
        let v = check(&[rec(0, 30, V2), rec(1, 30, V1)], &refused, &oracles(), &kinds);
        assert_eq!((v.converged, v.stale, v.wrong), (2, 0, 1));
    }

    #[test]
    fn consistency_counts_disagreeing_keys_once() {
        let o = &oracles()[1];
        let kinds = vec![Kind::Edge, Kind::Edge, Kind::Frontend("v1")];
        let good = vec![vec![(200, V2); 10], vec![(200, V2); 10], vec![(200, V1); 10]];
        assert_eq!(consistency(&good, &kinds, o, 10), Consistency { keys: 10, proxies: 3, ..Default::default() });
        let mut bad = good.clone();
        bad[1][4] = (200, V1);
        bad[2][5] = (503, V1);
        let c = consistency(&bad, &kinds, o, 10);
        assert_eq!((c.disagreements, c.mismatches, c.failed), (1, 1, 1));
        assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 50.0), 2.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0, 4.0], 99.0), 4.0);
    }
}
