//! `fleet`: many Envoys sharing one set of watched ECDS files under load, through a series of policy pushes;
//! prints the figures FLEET.md records and exits 1 if any goal was missed (see `canary_tests::fleet`).
//!
//! `fleet [--proxies N]` is `make fleet` (20% → 50% → 100%, a broken policy, a rollback, then 10,000 rules);
//! `fleet soak [--secs S]` is `make soak` (4 proxies, a push every 30 s, RSS every 10 s).

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use canary_tests::fleet::run::{run, Plan};

fn main() -> ExitCode {
    match real_main() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("fleet: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<bool> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let number = |flag: &str, default: u64| -> Result<u64> {
        match args.iter().position(|a| a == flag) {
            Some(i) => args
                .get(i + 1)
                .with_context(|| format!("{flag} needs a number"))?
                .parse()
                .with_context(|| flag.to_string()),
            None => Ok(default),
        }
    };
    let (title, plan) = match args.first().map(String::as_str) {
        Some("soak") => {
            let secs = number("--secs", 600)?;
            if secs < 40 {
                bail!("--secs must be at least 40 (one push every 30 s)");
            }
            (format!("soak: 4 proxies, {secs} s, a push every 30 s"), Plan::soak(secs))
        }
        Some(other) if !other.starts_with("--") => {
            bail!("unknown mode `{other}`: `fleet [--proxies N]` or `fleet soak [--secs S]`")
        }
        _ => {
            let proxies = number("--proxies", 16)? as usize;
            if proxies < 4 {
                bail!("--proxies must be at least 4 (a whole S5 chain)");
            }
            (format!("fleet: {proxies} proxies"), Plan::fleet(proxies))
        }
    };
    let report = run(&plan, true)?;
    println!("\n## {title}\n\n{}", report.table());
    let failures = report.failures();
    for f in &failures {
        println!("GOAL MISSED: {f}");
    }
    if failures.is_empty() {
        println!("every goal met");
    }
    Ok(failures.is_empty())
}
