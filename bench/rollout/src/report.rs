//! Outcomes of one (judge, cell) summarised, the Markdown table, and the goals checked against the figures.

use canary_rollout::sim::{Outcome, Verdict};
use serde::Serialize;

use crate::cells::Cell;

/// One judge on one cell over all seeds.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub judge: String,
    pub rate: f64,
    pub baseline_errors: f64,
    pub effect: String,
    /// The canary equals the baseline: a rollback is a false rollback.
    pub aa: bool,
    pub runs: usize,
    pub rolled_back: f64,
    pub promoted: f64,
    /// Share of runs still undecided at the horizon.
    pub undecided: f64,
    pub rollback_secs_median: Option<u64>,
    pub rollback_secs_p90: Option<u64>,
    pub promote_secs_median: Option<u64>,
    /// Mean canary requests served while bad before the decision (0 in A/A cells). A bad canary that is
    /// promoted counts only its requests until promotion: it then takes all traffic, so a promoting judge
    /// is worse than this figure alone says (see `promoted`).
    pub bad_requests_mean: f64,
    pub bad_requests_median: u64,
    /// Mean bad requests within the horizon, a promoted bad canary serving all traffic after promotion.
    pub bad_requests_to_horizon_mean: f64,
    pub bad_errors_mean: f64,
    /// Mean distinct users the canary served before the decision.
    pub canary_users_mean: f64,
    /// Sticky judges: the most users any run moved from the canary back to the baseline (must be 0).
    pub moved_back_max: Option<u64>,
}

/// Nearest-rank percentile of sorted values.
fn percentile(sorted: &[u64], p: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted.get(rank - 1).copied()
}

fn mean(values: impl Iterator<Item = u64>) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for v in values {
        sum += v as f64;
        n += 1;
    }
    if n == 0 {
        0.0
    } else {
        sum / n as f64
    }
}

pub fn summarise(judge: &str, cell: &Cell, outcomes: &[Outcome]) -> Summary {
    let n = outcomes.len().max(1) as f64;
    let share = |v: Verdict| outcomes.iter().filter(|o| o.verdict == v).count() as f64 / n;
    let mut rollbacks: Vec<u64> =
        outcomes.iter().filter(|o| o.verdict == Verdict::RolledBack).map(|o| o.secs).collect();
    rollbacks.sort_unstable();
    let mut promotions: Vec<u64> = outcomes.iter().filter(|o| o.verdict == Verdict::Promoted).map(|o| o.secs).collect();
    promotions.sort_unstable();
    let mut bad: Vec<u64> = outcomes.iter().map(|o| o.bad_requests).collect();
    bad.sort_unstable();
    Summary {
        judge: judge.to_string(),
        rate: cell.rate,
        baseline_errors: cell.baseline_errors,
        effect: cell.effect.label.to_string(),
        aa: cell.is_aa(),
        runs: outcomes.len(),
        rolled_back: share(Verdict::RolledBack),
        promoted: share(Verdict::Promoted),
        undecided: share(Verdict::Undecided),
        rollback_secs_median: percentile(&rollbacks, 0.5),
        rollback_secs_p90: percentile(&rollbacks, 0.9),
        promote_secs_median: percentile(&promotions, 0.5),
        bad_requests_mean: mean(outcomes.iter().map(|o| o.bad_requests)),
        bad_requests_median: percentile(&bad, 0.5).unwrap_or(0),
        bad_requests_to_horizon_mean: mean(outcomes.iter().map(|o| o.bad_requests_to_horizon)),
        bad_errors_mean: mean(outcomes.iter().map(|o| o.bad_errors)),
        canary_users_mean: mean(outcomes.iter().map(|o| o.canary_users)),
        moved_back_max: outcomes.iter().filter_map(|o| o.moved_back_users).max(),
    }
}

fn secs(v: Option<u64>) -> String {
    v.map_or("–".into(), |s| s.to_string())
}

fn pct(v: f64) -> String {
    format!("{:.1}", v * 100.0)
}

/// One Markdown table of every (cell, judge), cells in grid order.
pub fn markdown(summaries: &[Summary]) -> String {
    let mut out = String::from(
        "| req/s | base err | canary | judge | rolled back % | promoted % | undecided % | rollback s p50 / p90 | promote s p50 | bad req before decision, mean (p50) | bad req in horizon, mean | bad users mean |\n\
         |---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for s in summaries {
        let bad = if s.aa { "–".into() } else { format!("{:.0} ({})", s.bad_requests_mean, s.bad_requests_median) };
        let horizon = if s.aa { "–".into() } else { format!("{:.0}", s.bad_requests_to_horizon_mean) };
        let users = if s.aa { "–".into() } else { format!("{:.0}", s.canary_users_mean) };
        out.push_str(&format!(
            "| {} | {}% | {} | {} | {} | {} | {} | {} / {} | {} | {} | {} | {} |\n",
            s.rate,
            s.baseline_errors * 100.0,
            s.effect,
            s.judge,
            pct(s.rolled_back),
            pct(s.promoted),
            pct(s.undecided),
            secs(s.rollback_secs_median),
            secs(s.rollback_secs_p90),
            secs(s.promote_secs_median),
            bad,
            horizon,
            users,
        ));
    }
    out
}

/// The goals of issue 23, each with the figures that decide it.
/// `ours`: our configurations, the main one first (the Flagger comparison is made for each).
pub fn goals(summaries: &[Summary], ours_all: &[&str], alpha: f64) -> String {
    let mut out = String::new();
    let worst_aa = |judge: &str, rate: Option<f64>| {
        summaries
            .iter()
            .filter(|s| s.judge == judge && s.aa && rate.is_none_or(|r| s.rate == r))
            .map(|s| s.rolled_back)
            .fold(0.0, f64::max)
    };
    let ours_aa = ours_all.iter().map(|o| worst_aa(o, None)).fold(0.0, f64::max);
    out.push_str(&format!(
        "- False rollbacks ≤ α = {alpha} in every A/A cell (all our configurations): worst cell {}% — {}\n",
        pct(ours_aa),
        met(ours_aa <= alpha)
    ));
    let find = |judge: &str, base: f64, effect: &str| {
        summaries
            .iter()
            .find(|s| s.judge == judge && s.rate == 100.0 && s.baseline_errors == base && s.effect == effect)
    };
    let mut flaggers: Vec<&str> = Vec::new();
    for s in summaries {
        if s.judge.to_lowercase().contains("flagger") && !flaggers.contains(&s.judge.as_str()) {
            flaggers.push(&s.judge);
        }
    }
    if flaggers.is_empty() {
        out.push_str(
            "- 100 req/s, errors ×2, ≤ 1/5 of Flagger's bad requests: no Flagger judge in this run — not checked\n",
        );
    }
    for (f, ours) in flaggers.iter().flat_map(|f| ours_all.iter().map(move |o| (f, *o))) {
        for base in crate::cells::BASELINE_ERRORS {
            let (Some(o), Some(t), Some(oa), Some(fa)) = (
                find(ours, base, "errors ×2"),
                find(f, base, "errors ×2"),
                find(ours, base, "A/A"),
                find(f, base, "A/A"),
            ) else {
                continue;
            };
            out.push_str(&format!(
                "- 100 req/s, {}% baseline, errors ×2, {ours} vs {f}: bad requests before the decision ours {:.0} vs {:.0}, \
                 within the horizon ours {:.0} vs {:.0} (ratio {:.2}); A/A false rollbacks ours {}% vs {}% — {}\n",
                base * 100.0,
                o.bad_requests_mean,
                t.bad_requests_mean,
                o.bad_requests_to_horizon_mean,
                t.bad_requests_to_horizon_mean,
                o.bad_requests_to_horizon_mean / t.bad_requests_to_horizon_mean.max(1.0),
                pct(oa.rolled_back),
                pct(fa.rolled_back),
                met(o.bad_requests_to_horizon_mean * 5.0 <= t.bad_requests_to_horizon_mean
                    && oa.rolled_back <= fa.rolled_back)
            ));
        }
    }
    for s in summaries.iter().filter(|s| ours_all.contains(&s.judge.as_str()) && s.effect.starts_with("latency tail")) {
        out.push_str(&format!(
            "- Tail-only latency at {} req/s, {}% errors, {}: rolled back {}% (median {} s) — {}\n",
            s.rate,
            s.baseline_errors * 100.0,
            s.judge,
            pct(s.rolled_back),
            secs(s.rollback_secs_median),
            met(s.rolled_back >= 0.99)
        ));
    }
    for s in summaries.iter().filter(|s| s.rate == 1.0 && s.aa) {
        // A rollback by our judge needs evidence (events on the canary), so at 1 req/s its rollbacks are the
        // test's α-level false alarms, not a verdict on missing data; a rule that fails a check on "no values"
        // rolls back far more often.
        out.push_str(&format!(
            "- 1 req/s, {}% errors, A/A, {}: rolled back {}%, still waiting at the horizon {}%{}\n",
            s.baseline_errors * 100.0,
            s.judge,
            pct(s.rolled_back),
            pct(s.undecided),
            if ours_all.contains(&s.judge.as_str()) {
                format!(" — {}", met(s.rolled_back <= alpha))
            } else {
                String::new()
            }
        ));
    }
    let moved = summaries.iter().filter_map(|s| s.moved_back_max).max().unwrap_or(0);
    out.push_str(&format!(
        "- Users moved v2→v1 before a decision (sticky routing through the evaluator): {moved} — {}\n",
        met(moved == 0)
    ));
    out
}

fn met(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**not met**"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10];
        assert_eq!(percentile(&v, 0.5), Some(5));
        assert_eq!(percentile(&v, 0.9), Some(9));
        assert_eq!(percentile(&[], 0.5), None);
        assert_eq!(percentile(&[7], 0.9), Some(7));
    }
}
