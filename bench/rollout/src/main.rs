//! `make bench-rollout`: our judge and the peers' rules on identical simulated rollouts, every cell of the
//! grid (`cells.rs`), `--seeds` runs each; prints a Markdown table and the goals, writes JSON.
//!
//! Flags: `--seeds N` (default 1000), `--threads N` (default: the machine's cores), `--horizon SECS`
//! (default 14400), `--rates 1,10,100,1000`, `--judges all|ours|I,J,…` (default all; indices into the
//! line-up printed at the start, e.g. `--judges 2` for the evidence-gated configuration alone), `--out PATH`
//! (default `bench/results/rollout-<unix time>.json`).

mod cells;
mod report;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use canary_rollout::sim::{OurJudge, Outcome, Population, SimJudge, Simulator};
use canary_rollout_bench::peers;

use cells::{grid, our_evidence_judge, our_evidence_steps, our_judge, our_slow_steps, our_steps, INTERVAL_SECS, STEPS};

struct Args {
    seeds: u64,
    threads: usize,
    horizon: u64,
    rates: Vec<f64>,
    /// Indices into the line-up to run (`None`: all).
    judges: Option<Vec<usize>>,
    out: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        seeds: 1000,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        horizon: 4 * 3600,
        rates: cells::RATES.to_vec(),
        judges: None,
        out: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            println!(
                "bench-rollout [--seeds N] [--threads N] [--horizon SECS] [--rates 1,10,100,1000] \
                 [--judges all|ours|I,J,…] [--out PATH]\n\
                 line-up: 0 ours, 1 ours with 10-min steps, 2 ours with promote: evidence, 3… the peers"
            );
            std::process::exit(0);
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let bad = |e: &dyn std::fmt::Display| format!("{flag} {value}: {e}");
        match flag.as_str() {
            "--seeds" => args.seeds = value.parse().map_err(|e| bad(&e))?,
            "--threads" => args.threads = value.parse::<usize>().map_err(|e| bad(&e))?.max(1),
            "--horizon" => args.horizon = value.parse().map_err(|e| bad(&e))?,
            "--rates" => {
                args.rates =
                    value.split(',').map(|r| r.trim().parse::<f64>().map_err(|e| bad(&e))).collect::<Result<_, _>>()?
            }
            "--judges" => {
                args.judges = match value.as_str() {
                    "all" => None,
                    "ours" => Some((0..OURS).collect()),
                    list => Some(
                        list.split(',')
                            .map(|i| i.trim().parse::<usize>().map_err(|e| bad(&e)))
                            .collect::<Result<_, _>>()?,
                    ),
                }
            }
            "--out" => args.out = Some(value),
            _ => return Err(format!("unknown flag {flag} (--seeds, --threads, --horizon, --rates, --judges, --out)")),
        }
    }
    Ok(args)
}

/// Our configurations in the line-up: the bench's main settings, the same judge with 10-minute steps, and
/// the 60-s schedule with evidence-gated promotion (`cells::our_evidence_steps`).
const OURS: usize = 3;

/// Judge `index` of the line-up, fresh: ours first (`OURS` configurations), then the peers in their order.
fn make_judge(index: usize) -> Option<Box<dyn SimJudge + Send>> {
    match index {
        0 => Some(Box::new(OurJudge::new(our_steps(), our_judge(), INTERVAL_SECS))),
        1 => Some(Box::new(OurJudge::new(our_slow_steps(), our_judge(), INTERVAL_SECS).named("ours, 10-min steps"))),
        2 => Some(Box::new(
            OurJudge::new(our_evidence_steps(), our_evidence_judge(), INTERVAL_SECS).named("ours, promote: evidence"),
        )),
        _ => peers::judges(&STEPS).into_iter().nth(index - OURS),
    }
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bench-rollout: {e}");
            std::process::exit(2);
        }
    };
    let line_up = OURS + peers::judges(&STEPS).len();
    let chosen: Vec<usize> = match &args.judges {
        None => (0..line_up).collect(),
        Some(list) => list.clone(),
    };
    if let Some(bad) = chosen.iter().find(|&&i| i >= line_up) {
        eprintln!("bench-rollout: --judges {bad}: the line-up has {line_up} judges (0–{})", line_up - 1);
        std::process::exit(2);
    }
    let names: Vec<String> = chosen.iter().filter_map(|&i| make_judge(i)).map(|j| j.name()).collect();
    let cells = grid(&args.rates);
    eprintln!(
        "bench-rollout: {} cells × {} judges ({}) × {} seeds, horizon {} s, {} threads",
        cells.len(),
        names.len(),
        names.join(", "),
        args.seeds,
        args.horizon,
        args.threads
    );
    let started = Instant::now();
    let mut summaries = Vec::new();
    let mut populations: Vec<(f64, Arc<Population>)> = Vec::new();
    for cell in &cells {
        let population = match populations.iter().find(|(r, _)| *r == cell.rate) {
            Some((_, p)) => Arc::clone(p),
            None => {
                let p = Arc::new(Population::new(canary_rollout::sim::population_size(cell.rate)));
                populations.push((cell.rate, Arc::clone(&p)));
                p
            }
        };
        let sim = Simulator::with_population(cell.scenario(args.horizon), population);
        let cell_started = Instant::now();
        for (&j, name) in chosen.iter().zip(names.iter()) {
            match run_cell(&sim, j, args.seeds, args.threads) {
                Ok(outcomes) => summaries.push(report::summarise(name, cell, &outcomes)),
                Err(e) => {
                    eprintln!("bench-rollout: {name} on {cell:?}: {e}");
                    std::process::exit(1);
                }
            }
        }
        eprintln!(
            "  {} req/s, {}% errors, {}: {:.1} s",
            cell.rate,
            cell.baseline_errors * 100.0,
            cell.effect.label,
            cell_started.elapsed().as_secs_f64()
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("{}", report::markdown(&summaries));
    let ours: Vec<&str> = chosen.iter().zip(names.iter()).filter(|(&i, _)| i < OURS).map(|(_, s)| s.as_str()).collect();
    println!("{}", report::goals(&summaries, &ours, our_judge().alpha));
    println!(
        "({} runs in {elapsed:.0} s, {} threads)",
        cells.len() as u64 * names.len() as u64 * args.seeds,
        args.threads
    );
    let out = args.out.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        format!("bench/results/rollout-{now}.json")
    });
    let json = serde_json::json!({
        "seeds": args.seeds,
        "horizon_secs": args.horizon,
        "steps": STEPS,
        "judges": names,
        "ours": {
            "judge": our_judge(),
            "steps": our_steps(),
            "slow_steps": our_slow_steps(),
            "evidence_judge": our_evidence_judge(),
            "evidence_steps": our_evidence_steps(),
            "interval_secs": INTERVAL_SECS
        },
        "elapsed_secs": elapsed,
        "cells": summaries,
    });
    match serde_json::to_string_pretty(&json)
        .map_err(|e| e.to_string())
        .and_then(|t| std::fs::write(&out, t).map_err(|e| e.to_string()))
    {
        Ok(()) => eprintln!("bench-rollout: wrote {out}"),
        Err(e) => {
            eprintln!("bench-rollout: {out}: {e}");
            std::process::exit(1);
        }
    }
}

/// All seeds of one judge on one cell, spread over `threads` (each thread takes the next seed).
fn run_cell(sim: &Simulator, judge: usize, seeds: u64, threads: usize) -> Result<Vec<Outcome>, String> {
    let next = AtomicUsize::new(0);
    let results: Vec<Result<Vec<(u64, Outcome)>, String>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed) as u64;
                        if seed >= seeds {
                            return Ok(done);
                        }
                        let mut j = make_judge(judge).ok_or("no such judge")?;
                        done.push((seed, sim.run(j.as_mut(), seed)?));
                    }
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap_or_else(|_| Err("a worker panicked".into()))).collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by_key(|(seed, _)| *seed);
    Ok(all.into_iter().map(|(_, o)| o).collect())
}
