//! canary-rollout-bench: the peers' judges (`peers/`) as faithful implementations of their documented rules,
//! each a `canary_rollout::sim::SimJudge`, and the bench that runs them and ours on identical traffic.
//! It may depend on `canary-rollout` (the simulator, the stepper) and on a statistics library for
//! Kayenta's Mann-Whitney test; nothing in the product depends on it.

pub mod peers;
