//! Reading speed: a real Istio lab file, and the refusal of alias bombs (issue 26: serde_yaml spent 35–60 ms
//! expanding each before its repetition limit stopped it). Figures are printed by criterion; FLEET.md and
//! ARCHITECTURE.md quote them.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};

/// `levels` levels of nine aliases: 9⁹ strings if expanded for 10 levels; 4 levels add 8,289 nodes by aliases, just
/// within the default budget (10,000).
fn billion_laughs(levels: usize) -> String {
    let mut lines = vec!["lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]".to_string()];
    for i in 1..levels {
        lines.push(format!("lol{i}: &lol{i} [{}]", vec![format!("*lol{}", i - 1); 9].join(", ")));
    }
    lines.join("\n")
}

fn bench(c: &mut Criterion) {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let lab = std::fs::read_to_string(format!("{root}/examples/istio/lab/s5-tester-chain.yaml")).expect("lab file");
    let corpus = std::fs::read_to_string(format!("{root}/tests/corpus/imports/billion-laughs.yaml")).expect("corpus");
    let bomb = billion_laughs(10);
    let within = billion_laughs(4);
    assert!(canary_yaml::documents(&lab).is_ok());
    assert!(canary_yaml::documents(&bomb).is_err());
    assert!(canary_yaml::documents(&corpus).is_err());
    assert!(canary_yaml::documents(&within).is_ok());
    c.bench_function("read: lab s5-tester-chain.yaml", |b| b.iter(|| canary_yaml::documents(black_box(&lab))));
    c.bench_function("read: 8,289 nodes by aliases (within the budget)", |b| {
        b.iter(|| canary_yaml::documents(black_box(&within)))
    });
    c.bench_function("refuse: billion laughs (9 levels of 9)", |b| b.iter(|| canary_yaml::documents(black_box(&bomb))));
    c.bench_function("refuse: tests/corpus/imports/billion-laughs.yaml", |b| {
        b.iter(|| canary_yaml::documents(black_box(&corpus)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
