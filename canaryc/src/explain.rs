//! `canaryc eval --explain`: prints [`canary_compiler::explain`]'s report, as text or (`--json`) as the eval answer
//! with the report under `explain`.

use canary_eval::{Config, Policy, ServiceId, SimpleRequest};
use rand::rngs::SmallRng;

pub fn print(
    config: &Config,
    policy: &Policy,
    service: ServiceId,
    req: &SimpleRequest,
    rng: &mut SmallRng,
    json: bool,
) {
    let report = canary_compiler::explain::explain(config, policy, service, req, rng);
    if json {
        /// `eval --json`'s two fields first, then the report.
        #[derive(serde::Serialize)]
        struct Answer<'a> {
            subset: Option<&'a str>,
            rule: Option<u32>,
            explain: &'a canary_compiler::explain::Report,
        }
        let answer = Answer { subset: report.subset.as_deref(), rule: report.rule, explain: &report };
        super::print(&format!("{}\n", serde_json::to_string(&answer).unwrap_or_default()));
    } else {
        super::print(&canary_compiler::explain::text(&report));
    }
}
