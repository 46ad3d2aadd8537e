//! `make fuzz-slowest`: times a fuzz target's oracle on every input of its corpus and prints the slowest.
//!
//! libFuzzer favours inputs that reach new code, whatever they cost, so a corpus can drift toward a few
//! expensive inputs run after run; its own report only names units slower than a second. This is how the
//! regexes that compiled to 10 MiB were found (FLEET.md, "The slow inputs"): 50 of 4,418 inputs took 64 % of
//! the parser's time. Each input runs `REPS` times and keeps its fastest time, so a busy machine moves the
//! figures less than it moves the ranking.
//!
//! Usage: `fuzz-slowest TARGET DIR [N]`, TARGET one of parse_compile, config_json, import_yaml.

use std::path::PathBuf;
use std::time::{Duration, Instant};

const REPS: usize = 5;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(target), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("usage: fuzz-slowest parse_compile|config_json|import_yaml DIR [N]");
        std::process::exit(2);
    };
    let show: usize = match args.get(2).map(|n| n.parse()) {
        None => 10,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            eprintln!("fuzz-slowest: N must be a number, not {:?}", args[2]);
            std::process::exit(2);
        }
    };
    let oracle: fn(&[u8]) = match target.as_str() {
        "parse_compile" => |b| {
            if let Ok(s) = std::str::from_utf8(b) {
                let _ = canary_checks::policy::check_policy(s);
            }
        },
        "config_json" => |b| {
            let _ = canary_checks::config::check_config(b);
        },
        "import_yaml" => |b| {
            if let Ok(s) = std::str::from_utf8(b) {
                let _ = canary_checks::import::check_import(s);
            }
        },
        other => {
            eprintln!("fuzz-slowest: no oracle for target {other:?}");
            std::process::exit(2);
        }
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).filter(|p| p.is_file()).collect(),
        Err(e) => {
            eprintln!("fuzz-slowest: cannot read {dir}: {e} (`make fuzz` fills fuzz/corpus/)");
            std::process::exit(2);
        }
    };
    files.sort();
    let mut timed: Vec<(Duration, usize, PathBuf)> = Vec::with_capacity(files.len());
    for path in files {
        let Ok(bytes) = std::fs::read(&path) else { continue };
        let fastest = (0..REPS)
            .map(|_| {
                let start = Instant::now();
                oracle(&bytes);
                start.elapsed()
            })
            .min()
            .unwrap_or_default();
        timed.push((fastest, bytes.len(), path));
    }
    if timed.is_empty() {
        println!("{target}: no inputs in {dir}");
        return;
    }
    timed.sort_by_key(|t| std::cmp::Reverse(t.0));
    let total: Duration = timed.iter().map(|t| t.0).sum();
    let share = |n: usize| {
        let top: Duration = timed.iter().take(n).map(|t| t.0).sum();
        100.0 * top.as_secs_f64() / total.as_secs_f64().max(f64::MIN_POSITIVE)
    };
    println!(
        "{target}: {} inputs, mean {:.1} µs; the slowest 1 % take {:.0} % of the time, the slowest {show} {:.0} %",
        timed.len(),
        total.as_secs_f64() * 1e6 / timed.len() as f64,
        share(timed.len().div_ceil(100)),
        share(show),
    );
    for (time, len, path) in timed.iter().take(show) {
        println!("{:>10.1} µs {len:>6} bytes  {}", time.as_secs_f64() * 1e6, path.display());
    }
}
