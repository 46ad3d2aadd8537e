//! A short fleet (4 Envoys sharing watched ECDS files, see `canary_tests::fleet`) under load through one push
//! and one broken push: the push lands on every proxy with zero non-2xx answers, no request after convergence
//! meets the old policy, 1,000 sticky keys land in the same subset on every proxy (and as the evaluator says),
//! S5 chains across proxies never mix versions, and the broken policy is refused everywhere while the last good
//! one keeps serving. `make fleet` runs the full series on 16 proxies.

use anyhow::Result;
use canary_tests::fleet::converge::Outcome;
use canary_tests::fleet::run::{run, Plan};

#[test]
fn a_push_reaches_every_proxy_hitlessly_and_a_broken_one_is_refused_everywhere() -> Result<()> {
    let plan = Plan::short();
    let report = run(&plan, true)?;
    println!("{}", report.table());
    let [push, bad] = &report.pushes[..] else { panic!("two pushes expected: {:?}", report.pushes) };
    assert_eq!((push.expected, push.applied, push.latencies_ms.len()), (Outcome::Applied, 4, 4));
    assert_eq!((bad.expected, bad.refused), (Outcome::Refused, 4));
    let v = &report.verdict;
    assert!(v.converged > 500, "too few requests checked after convergence: {v:?}");
    assert_eq!((v.non_2xx, v.errors, v.stale, v.wrong), (0, 0, 0, 0), "{v:?}: {:?}", report.errors);
    let (_, sweep) = &report.sweeps[0];
    assert_eq!((sweep.keys, sweep.proxies), (1000, 4));
    assert_eq!((sweep.disagreements, sweep.mismatches, sweep.failed), (0, 0, 0));
    assert!(report.chains > 50 && report.chains_v2 > 0, "too few chains: {}", report.chains);
    assert_eq!(report.chains_mixed, 0);
    assert_eq!(report.refusals_logged, Some(4));
    assert!(report.failures().is_empty(), "{:?}", report.failures());
    Ok(())
}
