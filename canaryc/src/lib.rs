//! canaryc — the `canaryc` commands (SCENARIOS.md §3). Output forms and exit codes are a contract that scripts
//! rely on: results on stdout, diagnostics on stderr, exit 1 on any error in the policy.
//!
//! Contract: the thin front end. It parses arguments (clap), reads and writes files, prints, and calls the
//! crates that do the work — the core (`canary-compiler`: compile, check, eval, simulate, diff), the backends
//! (`canary-backends`: manifests), the importer (`canary-import`), the language server (`canary-lsp`), the
//! policy tests (`canary-policy-tests`) and the rollout (`canary-rollout`, through the `PolicyOps` it
//! implements in `rollout.rs`). Nothing depends on it except tests; logic that a second front end would need
//! belongs in one of those crates, not here.

mod diff;
mod explain;
mod fmt;
mod import;
mod manifest;
mod playground;
mod request;
mod rollout;
mod route_settings;
mod test;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use canary_eval::{Config, Policy, ServiceId};
use clap::{Parser, Subcommand};
use rand::rngs::SmallRng;
use rand::SeedableRng;

use canary_compiler::analysis;

#[derive(Parser)]
#[command(name = "canaryc", version, about = "Compile, check and try canary routing policies")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a policy to the JSON config the filter loads.
    Compile {
        file: PathBuf,
        /// Write the JSON here instead of stdout.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// Report errors and warnings (unreachable rules, splits that never apply, unknown subsets).
    Check {
        file: PathBuf,
        /// Subsets that exist (e.g. your DestinationRule's), comma-separated; others are reported.
        #[arg(long, value_delimiter = ',')]
        subsets: Option<Vec<String>>,
    },
    /// Decide the subset for one request.
    Eval {
        file: PathBuf,
        #[command(flatten)]
        request: request::RequestFlags,
        /// Print `{"subset": …, "rule": LINE}` instead of the subset alone.
        #[arg(long)]
        json: bool,
        /// Show every rule tried, whether it matched and why not, and a split's bucket.
        #[arg(long)]
        explain: bool,
        /// Seed for non-sticky splits (default: random).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Decide N requests from N users (each sticky key generated per request) and count the subsets.
    Simulate {
        file: PathBuf,
        #[arg(short = 'n', default_value_t = 10_000)]
        n: u64,
        #[command(flatten)]
        request: request::RequestFlags,
        /// Keep the request's sticky keys: N requests of one user instead of N users.
        #[arg(long)]
        fixed_key: bool,
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Who moves between subsets from OLD to NEW, per service.
    Diff(diff::DiffArgs),
    /// Print the JSON Schema of the compiled config.
    Schema,
    /// Serve the browser playground (the same compiler and evaluator, compiled to wasm).
    Playground {
        #[arg(long, default_value = "127.0.0.1:8787")]
        listen: std::net::SocketAddr,
    },
    /// Deployment YAML: Istio WasmPlugin/EnvoyFilter/routes, or a plain Envoy bootstrap.
    Manifest(Box<manifest::ManifestArgs>),
    /// Run YAML test cases against a policy (exit 1: a case failed, 2: a test file is malformed).
    Test(test::TestArgs),
    /// Rewrite policies in the canonical layout (`--check`: only list those that are not).
    Fmt(fmt::FmtArgs),
    /// Istio VirtualServices (+ DestinationRules) → a policy that decides the same, on stdout.
    Import(import::ImportArgs),
    /// Language server on stdin/stdout, for editors (diagnostics, hover, completion, formatting, rename).
    Lsp,
    /// Step one split through a plan's percentages, judging canary vs baseline from live metrics (exit 0
    /// promoted, 1 rolled back, 2 error); `status|pause|resume|abort PLAN` act on a rollout's saved state.
    Rollout(rollout::RolloutArgs),
}

/// Runs the CLI with the process arguments; returns the exit code.
pub fn main() -> i32 {
    run_with(std::env::args_os())
}

/// Runs the CLI with `args` (the program name first), exactly as the binary would; returns the exit code.
/// Harnesses (the real-Envoy push tests) call it to run the very command lines the README shows.
pub fn run_with<I, T>(args: I) -> i32
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    match run(cli.command) {
        Ok(()) => 0,
        Err(Failure::Reported) => 1,
        Err(Failure::Message(m)) => {
            eprintln!("error: {m}");
            1
        }
        Err(Failure::Exit(code)) => code,
    }
}

enum Failure {
    /// Diagnostics were already printed.
    Reported,
    Message(String),
    /// Output is complete; exit with this code (`canaryc test`'s 1 and 2, `diff --exit-code`).
    Exit(i32),
}

impl From<String> for Failure {
    fn from(m: String) -> Self {
        Failure::Message(m)
    }
}

fn run(command: Command) -> Result<(), Failure> {
    match command {
        Command::Compile { file, output } => {
            let config = load(&file)?.0.config;
            let json = canary_compiler::config_json(&config);
            match output {
                Some(out) => canary_backends::manifest::write_atomic(&out, json.as_bytes())
                    .map_err(|e| format!("{}: cannot write: {e}", out.display()))?,
                None => print(&json),
            }
        }
        Command::Check { file, subsets } => {
            let (compiled, source) = load(&file)?;
            let findings = analysis::analyse(&compiled.config, subsets.as_deref());
            let mut warnings = compiled.warnings.clone();
            warnings.extend(canary_compiler::findings_to_diagnostics(&findings, &source));
            if !warnings.is_empty() {
                eprint!("{}", canary_compiler::render(&warnings, &source, &file.display().to_string(), color()));
            }
            let settings_warnings = route_settings::check(&file, &compiled, &source)?;
            eprintln!("{}: {} warning(s)", file.display(), warnings.len() + settings_warnings);
        }
        Command::Eval { file, request, json, explain, seed } => {
            let config = load(&file)?.0.config;
            let policy = policy(&config)?;
            let service = pick_service(&policy, request.service.as_deref())?;
            let req = request.spec()?.build(policy.service_name(service));
            if explain {
                explain::print(&config, &policy, service, &req, &mut rng(seed), json);
                return Ok(());
            }
            let d = policy.decide(service, &req, &mut rng(seed));
            let subset = d.subset.map(|s| policy.subset_name(s));
            if json {
                /// Field order as documented: `{"subset": …, "rule": …}`.
                #[derive(serde::Serialize)]
                struct Answer<'a> {
                    subset: Option<&'a str>,
                    rule: Option<u32>,
                }
                let answer = Answer { subset, rule: d.rule.map(|r| policy.rule_line(r)) };
                print(&format!("{}\n", serde_json::to_string(&answer).unwrap_or_default()));
            } else {
                print(&format!("{}\n", subset.unwrap_or("none")));
            }
        }
        Command::Simulate { file, n, request, fixed_key, seed } => {
            let config = load(&file)?.0.config;
            let policy = policy(&config)?;
            let service = pick_service(&policy, request.service.as_deref())?;
            let base = request.spec()?.build(policy.service_name(service));
            let keys = if fixed_key {
                canary_compiler::request::Keys::Fixed
            } else {
                canary_compiler::request::Keys::Generated
            };
            let sim = canary_compiler::request::simulate(&policy, &config, service, &base, n, keys, &mut rng(seed));
            print(&format!("{}\n", serde_json::to_string(&sim.counts).unwrap_or_default()));
            eprintln!("{}", sim.note());
        }
        Command::Schema => print(&canary_eval::schema_json()),
        Command::Playground { listen } => playground::serve(listen)?,
        Command::Manifest(args) => manifest::run(*args)?,
        Command::Test(args) => return test::run(args),
        Command::Fmt(args) => fmt::run(args)?,
        Command::Import(args) => import::run(args)?,
        Command::Diff(args) => diff::run(args)?,
        Command::Rollout(args) => rollout::run(args)?,
        Command::Lsp => match canary_lsp::serve_stdio() {
            0 => {}
            code => return Err(Failure::Exit(code)),
        },
    }
    Ok(())
}

/// Reads and compiles a policy; diagnostics go to stderr (nothing to stdout) on failure.
fn load(file: &Path) -> Result<(canary_compiler::Compiled, String), Failure> {
    let name = file.display().to_string();
    let source = std::fs::read_to_string(file).map_err(|e| format!("{name}: cannot read: {e}"))?;
    match canary_compiler::compile(&source, &name) {
        Ok(compiled) => Ok((compiled, source)),
        Err(diags) => {
            eprint!("{}", canary_compiler::render(&diags, &source, &name, color()));
            Err(Failure::Reported)
        }
    }
}

fn policy(config: &Config) -> Result<Policy, Failure> {
    Policy::new(config).map_err(|e| Failure::Message(format!("compiled config refused: {e}")))
}

/// `--service` may be omitted when the policy has one service or only top-level rules.
fn pick_service(policy: &Policy, name: Option<&str>) -> Result<ServiceId, Failure> {
    let (id, note) = canary_compiler::request::resolve_service(policy, name).map_err(|many| {
        Failure::Message(format!("the policy has several services ({}); pass --service", many.join(", ")))
    })?;
    if let Some(note) = note {
        eprintln!("note: {note}");
    }
    Ok(id)
}

fn rng(seed: Option<u64>) -> SmallRng {
    let seed = seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    SmallRng::seed_from_u64(seed)
}

pub(crate) fn color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Writes to stdout, ignoring a closed pipe (`canaryc compile x | head`).
fn print(s: &str) {
    let _ = std::io::stdout().write_all(s.as_bytes());
}
