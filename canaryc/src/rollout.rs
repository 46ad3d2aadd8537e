//! `canaryc rollout PLAN [--dry-run] [--json]` and `canaryc rollout status|pause|resume|abort PLAN`: the glue
//! around `canary-rollout`, which holds the logic. This module only supplies the compiler's own code paths
//! as [`PolicyOps`] (compile + check with rendered diagnostics, `canaryc diff`'s summary, `canaryc manifest`
//! run in-process) and picks the output (JSON lines, the live view on a TTY, plain lines).
//!
//! Exit codes: 0 promoted, 1 rolled back or aborted, 2 any error (a bad plan says `PLAN:LINE:COL: error:`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use canary_rollout::clock::SystemClock;
use canary_rollout::control;
use canary_rollout::controller::Controller;
use canary_rollout::events::{Event, JsonLines, Output, Tee};
use canary_rollout::exposition::Exposition;
use canary_rollout::ops::PolicyOps;
use canary_rollout::plan::Plan;
use canary_rollout::source_of_plan::source_of_plan;
use canary_rollout::view::{Live, Plain};
use clap::{Args, Parser, Subcommand};

use super::manifest::{self, ManifestArgs};
use super::Failure;

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_value_name = "ACTION")]
pub struct RolloutArgs {
    #[command(subcommand)]
    action: Option<Action>,
    /// The rollout plan (YAML): run it, or resume it where it stopped.
    plan: Option<PathBuf>,
    /// Judge and print what would be pushed; never rewrite the policy, push, or write the state file.
    #[arg(long)]
    dry_run: bool,
    /// One JSON object per event on stdout (`{"event":"step","from":1,"to":5}`, `reading`, `push`, …).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Action {
    /// Print the saved state: step, percentage, evidence, elapsed time.
    Status { plan: PathBuf },
    /// Keep judging (a regression still rolls back) but never advance.
    Pause { plan: PathBuf },
    /// Let a paused rollout advance again.
    Resume { plan: PathBuf },
    /// Set the split to 0% with one push and end the rollout (a running controller does it and exits 1).
    Abort {
        plan: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(args: RolloutArgs) -> Result<(), Failure> {
    let code = match (args.action, args.plan) {
        (Some(action), _) => act(action),
        (None, Some(plan)) => execute(&plan, args.dry_run, args.json),
        (None, None) => {
            Err("usage: canaryc rollout PLAN [--dry-run] [--json] | canaryc rollout status|pause|resume|abort PLAN"
                .into())
        }
    };
    match code {
        Ok(0) => Ok(()),
        Ok(code) => Err(Failure::Exit(code)),
        Err(message) => {
            eprintln!("{message}");
            Err(Failure::Exit(2))
        }
    }
}

/// Errors are complete lines (`PLAN:LINE:COL: error: …`, or `error: …`).
fn load(plan: &Path) -> Result<Plan, String> {
    Plan::load(plan).map_err(|e| e.to_string())
}

fn error(m: String) -> String {
    format!("error: {m}")
}

fn execute(path: &Path, dry_run: bool, json: bool) -> Result<i32, String> {
    let plan = load(path)?;
    let mut terminal = terminal(json);
    if let Some((outcome, state)) = control::outcome(&plan).map_err(error)? {
        terminal.emit(&Event::Finished { state });
        return Ok(outcome.exit_code());
    }
    let mut source = source_of_plan(&plan.metrics).map_err(|e| error(format!("metrics: {e}")))?;
    let mut exposition = match plan.metrics_listen {
        Some(addr) => Some(Exposition::serve(addr).map_err(error)?),
        None => None,
    };
    let mut outputs: Vec<&mut dyn Output> = vec![terminal.as_mut()];
    if let Some(e) = exposition.as_mut() {
        outputs.push(e);
    }
    let mut out = Tee { outputs };
    let ops = CompilerOps;
    let mut clock = SystemClock;
    let mut controller =
        Controller { plan: &plan, ops: &ops, source: source.as_mut(), clock: &mut clock, out: &mut out, dry_run };
    controller.run().map(|o| o.exit_code()).map_err(error)
}

fn act(action: Action) -> Result<i32, String> {
    let mut clock = SystemClock;
    let now = canary_rollout::clock::Clock::now(&clock);
    match action {
        Action::Status { plan } => {
            super::print(&control::status(&load(&plan)?, now).map_err(error)?);
            Ok(0)
        }
        Action::Pause { plan } => say(control::set_paused(&load(&plan)?, true)),
        Action::Resume { plan } => say(control::set_paused(&load(&plan)?, false)),
        Action::Abort { plan, json } => {
            let plan = load(&plan)?;
            let mut out = terminal(json);
            // A running controller reads the request within one interval; allow it three, and a push.
            let wait = plan.interval_secs * 3.0 + 60.0;
            let outcome = control::abort(&plan, &CompilerOps, out.as_mut(), &mut clock, wait).map_err(error)?;
            Ok(outcome.exit_code())
        }
    }
}

fn say(result: Result<String, String>) -> Result<i32, String> {
    super::print(&format!("{}\n", result.map_err(error)?));
    Ok(0)
}

/// JSON lines, the live view when stdout is a terminal, else plain lines.
fn terminal(json: bool) -> Box<dyn Output> {
    let stdout = std::io::stdout();
    if json {
        Box::new(JsonLines { out: stdout })
    } else if stdout.is_terminal() {
        Box::new(Live::new(stdout))
    } else {
        Box::new(Plain { out: stdout })
    }
}

/// The compiler's own compile, diff and manifest, for the rollout.
pub struct CompilerOps;

impl PolicyOps for CompilerOps {
    fn check(&self, path: &Path, text: &str) -> Result<(), String> {
        let name = path.display().to_string();
        canary_compiler::compile(text, &name)
            .map(|_| ())
            .map_err(|diags| canary_compiler::render(&diags, text, &name, false))
    }

    fn diff_summary(&self, old: &str, new: &str, service: &str) -> Result<String, String> {
        let compile = |text: &str, which: &str| {
            canary_compiler::compile(text, which)
                .map(|c| c.config)
                .map_err(|d| canary_compiler::render(&d, text, which, false))
        };
        let diffs = canary_compiler::diff::diff(&compile(old, "before")?, &compile(new, "after")?, Some(service))?;
        Ok(canary_compiler::diff::text(&diffs))
    }

    fn push(&self, policy: &Path, manifest_args: &[String], command: Option<&[String]>) -> Result<(), String> {
        let args = manifest_args_of(policy, manifest_args)?;
        let yaml = manifest::generate(&args).map_err(failure_text)?;
        if let Some(out) = args.output() {
            canary_backends::manifest::write_atomic(out, yaml.as_bytes())
                .map_err(|e| format!("{}: cannot write: {e}", out.display()))?;
        }
        match command {
            Some(argv) => pipe(argv, &yaml),
            None if args.output().is_none() => {
                Err("a push without `command` needs `-o FILE` in its manifest arguments (where the proxies read it)"
                    .into())
            }
            None => Ok(()),
        }
    }
}

/// `canaryc manifest POLICY ARGS…` as parsed arguments.
fn manifest_args_of(policy: &Path, extra: &[String]) -> Result<ManifestArgs, String> {
    #[derive(Parser)]
    #[command(name = "canaryc manifest", no_binary_name = false)]
    struct ManifestCommand {
        #[command(flatten)]
        args: ManifestArgs,
    }
    let argv = ["canaryc manifest".to_string(), policy.display().to_string()].into_iter().chain(extra.iter().cloned());
    ManifestCommand::try_parse_from(argv).map(|c| c.args).map_err(|e| format!("manifest arguments: {e}"))
}

fn failure_text(f: Failure) -> String {
    match f {
        Failure::Reported => "canaryc manifest failed (diagnostics above)".into(),
        Failure::Message(m) => m,
        Failure::Exit(code) => format!("canaryc manifest exited {code}"),
    }
}

/// Runs `argv` with `input` on its stdin; its stdout is discarded, its stderr reported on failure.
fn pipe(argv: &[String], input: &str) -> Result<(), String> {
    let (program, rest) = argv.split_first().ok_or("`command` is empty")?;
    let shown = argv.join(" ");
    let mut child = Command::new(program)
        .args(rest)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{shown}`: cannot start: {e}"))?;
    let mut stdin = child.stdin.take().ok_or_else(|| format!("`{shown}`: no stdin"))?;
    let input = input.to_string();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().map_err(|e| format!("`{shown}`: {e}"))?;
    let written = writer.join().map_err(|_| format!("`{shown}`: the writer thread failed"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("`{shown}` failed ({}): {}", output.status, stderr.trim()));
    }
    written.map_err(|e| format!("`{shown}`: cannot write the manifest to its stdin: {e}"))
}
