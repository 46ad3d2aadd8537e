//! What one rule (or the default) does with the traffic it decides, and how much moves when one outcome
//! replaces another — by bucket arithmetic, the evaluator's own: a split's subsets own consecutive ranges
//! of the 10,000 buckets from 0 in the order written, the default the rest. A sticky split buckets the
//! key (`xxh64(key, 0) % 10000`), a plain split draws a bucket per request.

use canary_eval::config::{Action, Rule, StickyKey};
use canary_eval::BUCKETS;

/// The subsets an outcome gives, as bucket ranges.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Every request gets this subset (`None`: no decision).
    Fixed(Option<String>),
    /// Buckets `[previous end, end)` get the subset; the last range ends at [`BUCKETS`].
    Split { by: Option<StickyKey>, ranges: Vec<(u32, Option<String>)> },
}

impl Outcome {
    /// The outcome of `rule`, or of the default when no rule decides (`rule` is `None`).
    pub fn of(rule: Option<&Rule>, default: Option<&str>) -> Outcome {
        let default = default.map(str::to_string);
        let split = match rule.map(|r| &r.then) {
            None => return Outcome::Fixed(default),
            Some(Action::Route(s)) => return Outcome::Fixed(Some(s.clone())),
            Some(Action::Split(split)) => split,
        };
        let mut ranges: Vec<(u32, Option<String>)> = Vec::new();
        let mut end = 0;
        for share in split.to.iter().filter(|s| s.weight > 0) {
            end += share.weight;
            push_range(&mut ranges, end, Some(share.subset.clone()));
        }
        if end < BUCKETS {
            push_range(&mut ranges, BUCKETS, default);
        }
        match ranges.as_slice() {
            [(_, only)] => Outcome::Fixed(only.clone()),
            _ => Outcome::Split { by: split.by.clone(), ranges },
        }
    }

    /// Each subset's share of the buckets.
    fn shares(&self) -> Vec<(Option<String>, u32)> {
        match self {
            Outcome::Fixed(s) => vec![(s.clone(), BUCKETS)],
            Outcome::Split { ranges, .. } => {
                let mut out: Vec<(Option<String>, u32)> = Vec::new();
                let mut start = 0;
                for (end, subset) in ranges {
                    add(&mut out, subset, end - start);
                    start = *end;
                }
                out
            }
        }
    }

    fn key(&self) -> Option<Option<&StickyKey>> {
        match self {
            Outcome::Fixed(_) => None,
            Outcome::Split { by, .. } => Some(by.as_ref()),
        }
    }
}

/// Traffic that changes subset: `share` of the region's requests (or, with `by`, of its users) goes from
/// `from` to `to`.
#[derive(Debug, Clone, PartialEq)]
pub struct Flow {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Between 0 and 1. Exact in 0.01% steps unless the two outcomes split on different keys.
    pub share: f64,
    /// The users who move are those whose key falls in the moving buckets: the same ones on every request.
    pub by: Option<StickyKey>,
    /// Bucket ranges `[start, end)` that move, when the move is decided by one key's (or one draw's)
    /// bucket; `None` when the outcomes split independently.
    pub buckets: Option<Vec<(u32, u32)>>,
}

/// What moves when `new` replaces `old` for the same requests.
pub fn flows(old: &Outcome, new: &Outcome) -> Vec<Flow> {
    let mut out: Vec<Flow> = Vec::new();
    match (old.key(), new.key()) {
        // One bucket decides both (a fixed outcome ignores it): the ranges line up exactly.
        (None, _) | (_, None) => {
            let by = match (old, new) {
                (Outcome::Split { by, .. }, _) | (_, Outcome::Split { by, .. }) => by.clone(),
                _ => None,
            };
            aligned(old, new, by, &mut out);
        }
        (Some(a), Some(b)) if a == b => aligned(old, new, a.cloned(), &mut out),
        // Different keys (or a key and a per-request draw): independent buckets, so the expected share of
        // a pair is the product of the two shares.
        _ => {
            for (from, p) in old.shares() {
                for (to, q) in new.shares() {
                    if from != to {
                        let share = f64::from(p) * f64::from(q) / f64::from(BUCKETS) / f64::from(BUCKETS);
                        out.push(Flow { from: from.clone(), to, share, by: None, buckets: None });
                    }
                }
            }
        }
    }
    out
}

/// Flows when the same bucket picks both subsets: walk the two range lists together.
fn aligned(old: &Outcome, new: &Outcome, by: Option<StickyKey>, out: &mut Vec<Flow>) {
    let ranges = |o: &Outcome| match o {
        Outcome::Fixed(s) => vec![(BUCKETS, s.clone())],
        Outcome::Split { ranges, .. } => ranges.clone(),
    };
    let (a, b) = (ranges(old), ranges(new));
    let (mut i, mut j, mut start) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let end = a[i].0.min(b[j].0);
        if a[i].1 != b[j].1 && end > start {
            let (from, to) = (&a[i].1, &b[j].1);
            match out.iter_mut().find(|f| f.from == *from && f.to == *to) {
                Some(f) => {
                    f.share += f64::from(end - start) / f64::from(BUCKETS);
                    f.buckets.get_or_insert_with(Vec::new).push((start, end));
                }
                None => out.push(Flow {
                    from: from.clone(),
                    to: to.clone(),
                    share: f64::from(end - start) / f64::from(BUCKETS),
                    by: by.clone(),
                    buckets: Some(vec![(start, end)]),
                }),
            }
        }
        start = end;
        if a[i].0 == end {
            i += 1;
        }
        if b[j].0 == end {
            j += 1;
        }
    }
}

fn push_range(ranges: &mut Vec<(u32, Option<String>)>, end: u32, subset: Option<String>) {
    match ranges.last_mut() {
        Some(last) if last.1 == subset => last.0 = end,
        _ => ranges.push((end, subset)),
    }
}

fn add(shares: &mut Vec<(Option<String>, u32)>, subset: &Option<String>, n: u32) {
    match shares.iter_mut().find(|(s, _)| s == subset) {
        Some((_, total)) => *total += n,
        None => shares.push((subset.clone(), n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_eval::config::{Share, Split};

    fn split(shares: &[(&str, u32)], by: Option<StickyKey>, default: &str) -> Outcome {
        let to = shares.iter().map(|(s, w)| Share { subset: s.to_string(), weight: *w }).collect();
        let rule = Rule { line: 1, when: None, then: Action::Split(Split { to, by }) };
        Outcome::of(Some(&rule), Some(default))
    }

    fn summary(flows: &[Flow]) -> Vec<(String, String, f64)> {
        let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
        flows.iter().map(|f| (name(&f.from), name(&f.to), (f.share * 10_000.0).round() / 100.0)).collect()
    }

    #[test]
    fn raising_a_sticky_split_moves_users_one_way() {
        let uid = Some(StickyKey::Cookie("uid".into()));
        let (old, new) = (split(&[("v2", 2000)], uid.clone(), "v1"), split(&[("v2", 5000)], uid.clone(), "v1"));
        let f = flows(&old, &new);
        assert_eq!(summary(&f), [("v1".to_string(), "v2".to_string(), 30.0)]);
        assert_eq!(f[0].by, uid);
        assert_eq!(f[0].buckets, Some(vec![(2000, 5000)]));
        assert!(summary(&flows(&new, &old)) == [("v2".to_string(), "v1".to_string(), 30.0)]);
    }

    #[test]
    fn plain_splits_share_the_draw_and_fixed_outcomes_move_whole() {
        let (half, all) = (split(&[("v2", 5000)], None, "v1"), split(&[("v2", 10_000)], None, "v1"));
        assert_eq!(all, Outcome::Fixed(Some("v2".into())));
        assert_eq!(summary(&flows(&half, &all)), [("v1".to_string(), "v2".to_string(), 50.0)]);
        let (v1, none) = (Outcome::Fixed(Some("v1".into())), Outcome::Fixed(None));
        assert_eq!(summary(&flows(&v1, &none)), [("v1".to_string(), "none".to_string(), 100.0)]);
        assert!(flows(&half, &half).is_empty());
    }

    #[test]
    fn reordered_shares_move_by_ranges() {
        let (a, b) =
            (split(&[("v2", 3000), ("v3", 3000)], None, "v1"), split(&[("v3", 3000), ("v2", 3000)], None, "v1"));
        assert_eq!(summary(&flows(&a, &b)), [("v2".into(), "v3".into(), 30.0), ("v3".into(), "v2".into(), 30.0)]);
    }

    #[test]
    fn different_keys_are_independent() {
        let a = split(&[("v2", 5000)], Some(StickyKey::Cookie("a".into())), "v1");
        let b = split(&[("v2", 2000)], Some(StickyKey::Header("b".into())), "v1");
        let f = summary(&flows(&a, &b));
        assert_eq!(f, [("v2".to_string(), "v1".to_string(), 40.0), ("v1".to_string(), "v2".to_string(), 10.0)]);
    }
}
