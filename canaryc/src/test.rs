//! `canaryc test POLICY TESTFILE…`: prints one line per failing case, `--coverage`'s unreached rules,
//! then `N passed, M failed`. Exit 0, 1 (a case failed), 2 (a test file is malformed: nothing runs).

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::Args;

use super::{load, policy, print, Failure};
use canary_policy_tests::{self, Runner, DEFAULT_SAMPLES};

#[derive(Args)]
pub struct TestArgs {
    policy: PathBuf,
    /// YAML files of cases.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Also list the rules that no case reached (decided no draw).
    #[arg(long)]
    coverage: bool,
    /// Draws per case (a split makes one evaluation a coin toss).
    #[arg(short = 'n', default_value_t = DEFAULT_SAMPLES, value_parser = clap::value_parser!(u64).range(1..))]
    n: u64,
    /// Seed of the per-request draws (fixed, so a run is reproducible).
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(args: TestArgs) -> Result<(), Failure> {
    let (compiled, source) = load(&args.policy)?;
    let policy = policy(&compiled.config)?;
    let mut runner = Runner::new(&policy, &compiled.config, args.n, args.seed);

    // Read and resolve every case first: a malformed file stops the run before any case is decided.
    let mut suites = Vec::new();
    let mut malformed = false;
    for path in &args.files {
        let name = path.display().to_string();
        let cases = std::fs::read_to_string(path)
            .map_err(|e| canary_policy_tests::FileError { line: 1, column: 1, message: format!("cannot read: {e}") })
            .and_then(|text| canary_policy_tests::parse(&text));
        match cases {
            Ok(cases) => {
                for case in cases {
                    match runner.prepare(&case) {
                        Ok(prepared) => suites.push((name.clone(), case, prepared)),
                        Err(message) => {
                            eprintln!("{name}:{}:{}: error: case {:?}: {message}", case.line, case.column, case.name);
                            malformed = true;
                        }
                    }
                }
            }
            Err(e) => {
                eprintln!("{name}:{}:{}: error: {}", e.line, e.column, e.message);
                malformed = true;
            }
        }
    }
    if malformed {
        return Err(Failure::Exit(2));
    }

    let (mut passed, mut failed) = (0, 0);
    let mut out = String::new();
    for (file, case, prepared) in &suites {
        match runner.run(case, prepared) {
            None => passed += 1,
            Some(why) => {
                failed += 1;
                let _ = writeln!(out, "{file}:{}: case {:?}: {why}", case.line, case.name);
            }
        }
    }
    if args.coverage {
        let policy_name = args.policy.display().to_string();
        let spans = canary_policy_tests::rule_spans(&policy, &compiled.config, &compiled.spans);
        let unreached: Vec<_> = runner.unreached().collect();
        let _ = writeln!(
            out,
            "coverage: {} of {} rules reached",
            policy.rule_count() - unreached.len(),
            policy.rule_count()
        );
        for id in unreached {
            let at = match spans.as_ref().and_then(|s| s.get(id.0 as usize)) {
                Some(span) => {
                    let text = source.get(span.start..span.end).unwrap_or_default();
                    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
                    format!("{}: not reached by any case: {text}", canary_dsl::line_col(&source, span.start))
                }
                None => format!("{}: not reached by any case", policy.rule_line(id)),
            };
            let _ = writeln!(out, "{policy_name}:{at}");
        }
    }
    let _ = writeln!(out, "{passed} passed, {failed} failed");
    print(&out);
    if failed > 0 {
        Err(Failure::Exit(1))
    } else {
        Ok(())
    }
}
