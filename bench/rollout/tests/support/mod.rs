//! What the peers' tests share: one second of canary-only traffic, and a judge driven over ticks.

use canary_rollout::sim::{Action, ArmTick, SimJudge, Tick};

/// Second `t` with `requests` canary requests, `errors` of them 5xx, all in latency bucket `bucket`.
pub fn canary(t: u64, requests: u64, errors: u64, bucket: usize) -> Tick {
    let mut latency = [0u64; 20];
    if let Some(slot) = latency.get_mut(bucket) {
        *slot = requests;
    }
    Tick { t, canary: ArmTick { requests, errors, latency, new_users: 0 }, baseline: ArmTick::default() }
}

/// Feeds `ticks` and returns the non-Hold actions with the tick they came on.
pub fn run(judge: &mut impl SimJudge, ticks: impl IntoIterator<Item = Tick>) -> Vec<(u64, Action)> {
    ticks
        .into_iter()
        .filter_map(|tick| {
            let a = judge.on_tick(&tick);
            (a != Action::Hold).then_some((tick.t, a))
        })
        .collect()
}
