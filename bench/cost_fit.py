#!/usr/bin/env python3
"""Fits the cost model of backends/src/cost.rs to `make bench-scale`'s callgrind figures, and checks it.

    bench/cost_fit.py fit   bench/results/scale-*.json   # writes bench/results/cost-model.json
    bench/cost_fit.py check bench/results/scale-*.json   # the model's error, per policy, as canaryc prints it

`fit` solves, per backend form, a least-squares problem over the training kinds (every kind but `mixed`),
weighted by 1/measured so that every policy counts by its relative error (a 10-rule policy as much as a
10,000-rule one). Each measured policy is described by what the model counts for it:

- native route list (worst case: every route tried): [1, exact-header routes, prefix routes, cookie routes,
  contains routes, sticky split taken, RE2 routes]. `in [a, b]` is two exact routes; the sticky kind's split is
  one unconditional route after the N exact ones;
- matcher tree (`--native-tables tree`): the list form's base plus one table lookup (exact map with its comma
  guard, or prefix map), plus the list after the table (the sticky kind's split); a term per table kind;
- filter: [1, plain rules, plain regex rules, sticky split taken] — the evaluator's plan (canary_eval
  `Policy::evaluation_plan`): a run of ≥ 4 exact (`=`, `in`), literal `~` or path-prefix rules is one index
  lookup, which costs less than the spread of the base between request shapes (±4k: the 10- and 10,000-rule
  tables differ by 1.1k) and is not separable from it, so it counts as part of the base; regex rules are tried
  one by one.

A policy measured more than once (a kind re-measured after the evaluator changed) counts by its latest figure:
files are read in the order of their `meta.date`, and a later record replaces an earlier one.

The coefficients go into cost-model.json and, by hand, into `CALIBRATED` in backends/src/cost.rs (its test keeps
them equal). `check` then asks the built canaryc (`manifest --backend auto`, which prints every candidate's
estimate) for each measured policy — the training kinds, the held-out `mixed` policies, and S1–S5 as
bench/envoy_bench.py measured them (bench/results/instructions-20261201-1935.json) — and prints measured,
estimated and the error; `check --write` stores that table in cost-model.json.
"""

import argparse
import glob
import json
import os
import re
import subprocess
import sys

import bench_scale as bs

ROOT = bs.ROOT
MODEL = os.path.join(ROOT, "bench", "results", "cost-model.json")
HELD_OUT = {"mixed"}
# Terms no training kind can separate any more, kept at their last fitted figure. `filter_rule` (a rule the filter
# tries on its own) was fitted from the `in` tables when the evaluator tried `in` rules one by one (8,487.9k per
# request at 10,000 rules, scale-20261207-filter-10000.json); `in` joined the index since, and the only plain rule
# left in the training kinds is the sticky kind's split, collinear with `filter_sticky_split`.
FIXED = {"filter_rule": 825.4}
LIST_TERMS = ["list_base", "list_exact", "list_prefix", "list_cookie", "list_contains", "list_sticky_split",
              "list_regex"]
TREE_TERMS = ["tree_exact_table", "tree_prefix_table"]
FILTER_TERMS = ["filter_base", "filter_rule", "filter_regex", "filter_sticky_split"]
# The S1–S5 proxies of bench/envoy_bench.py (name -> policy, service, node labels), measured before this model.
SCENARIOS = {
    "s1": ("examples/s1-all-v1.canary", "frontend", []),
    "s2-50": ("examples/s2-forecast-50.canary", "forecast", []),
    "s2-100": ("examples/s2-forecast-100.canary", "forecast", []),
    "s3": ("examples/s3-chrome.canary", "forecast", []),
    "s4": ("examples/s4-android-split.canary", "frontend", []),
    "s5-frontend": ("examples/s5-tester-chain.canary", "frontend", []),
    "s5-forecast-v1": ("examples/s5-tester-chain.canary", "forecast", [("version", "v1")]),
    "s5-forecast-v2": ("examples/s5-tester-chain.canary", "forecast", [("version", "v2")]),
}
SCENARIO_RESULTS = os.path.join(ROOT, "bench", "results", "instructions-20261201-1935.json")


def list_features(kind, n):
    exact, prefix, cookie, contains, sticky, regex = 0, 0, 0, 0, 0, 0
    if kind == "header":
        exact = n
    elif kind == "in":
        exact = 2 * n
    elif kind == "prefix":
        prefix = n
    elif kind == "cookie":
        cookie = n
    elif kind == "literal":
        contains = n
    elif kind == "sticky":
        exact, sticky = n + 1, 1
    elif kind == "regex":
        regex = n
    else:
        return None
    return [1, exact, prefix, cookie, contains, sticky, regex]


def filter_features(kind, n):
    plain = 0 if n >= 4 else n  # a run of 4 or more is one index lookup, counted in the base (below)
    if kind in ("header", "in", "prefix", "cookie", "literal"):
        return [1, plain, 0, 0]
    if kind == "regex":
        return [1, 0, n, 0]
    if kind == "sticky":
        return [1, 1 + plain, 0, 1]
    return None


def solve(rows, ys):
    """Weighted least squares (weights 1/y: relative error), by the normal equations."""
    k = len(rows[0])
    a = [[0.0] * k for _ in range(k)]
    b = [0.0] * k
    for x, y in zip(rows, ys):
        w = 1.0 / (y * y)
        for i in range(k):
            b[i] += w * x[i] * y
            for j in range(k):
                a[i][j] += w * x[i] * x[j]
    # Terms no training policy exercises stay 0 (and are reported as such).
    used = [i for i in range(k) if a[i][i] > 0]
    m = [[a[i][j] for j in used] + [b[i]] for i in used]
    for c in range(len(used)):
        p = max(range(c, len(used)), key=lambda r: abs(m[r][c]))
        m[c], m[p] = m[p], m[c]
        for r in range(len(used)):
            if r != c and m[c][c]:
                f = m[r][c] / m[c][c]
                m[r] = [u - f * v for u, v in zip(m[r], m[c])]
    coef = [0.0] * k
    for c, i in enumerate(used):
        coef[i] = m[c][-1] / m[c][c]
    return coef


def records(paths):
    files = []
    for p in paths:
        with open(p) as f:
            data = json.load(f)
        files.append((data.get("meta", {}).get("date", ""), p, data.get("records", [])))
    latest = {}
    for _, _, recs in sorted(files):
        for r in recs:
            if "instructions" in r:  # reports and timing runs have none
                latest[(r["kind"], r["n"], r["form"])] = r
    return list(latest.values())


def fit(paths):
    recs = [r for r in records(paths) if r["kind"] not in HELD_OUT]
    model = {"sources": [os.path.relpath(p, ROOT) for p in paths], "coefficients": {}}
    for form, terms, features in (("list", LIST_TERMS, list_features), ("filter", FILTER_TERMS, filter_features)):
        rows, ys = [], []
        for r in recs:
            x = features(r["kind"], r["n"]) if r["form"] == form else None
            if x is not None:
                rows.append(x)
                ys.append(r["instructions"])
        fixed = [FIXED.get(t) for t in terms]
        ys = [y - sum(f * v for f, v in zip(fixed, x) if f is not None) for x, y in zip(rows, ys)]
        rows = [[0 if f is not None else v for f, v in zip(fixed, x)] for x in rows]
        for term, c, f in zip(terms, solve(rows, ys), fixed):
            model["coefficients"][term] = f if f is not None else round(c, 1)
        model[f"{form}_points"] = len(rows)
    # Trees: the chain's table lookup over the list form's base (a tree ends in a route list and the default, as
    # a list does), from what is left once the list part of the layout is accounted for; the mean over policies
    # (relative weights), per table kind.
    k = model["coefficients"]
    for term, kinds in (("tree_exact_table", ("header", "in", "sticky")), ("tree_prefix_table", ("prefix",))):
        rest = []
        for r in recs:
            if r["form"] == "tree" and r["kind"] in kinds:
                after = k["list_exact"] + k["list_sticky_split"] if r["kind"] == "sticky" else 0.0
                rest.append((r["instructions"] - k["list_base"] - after, r["instructions"]))
        num = sum(v / (y * y) for v, y in rest)
        den = sum(1 / (y * y) for _, y in rest)
        # Clamped at 0: a table lookup is a few k at most, less than the base's spread between request shapes
        # (the prefix kind's request is 5k cheaper than the header kind's), which could make it negative.
        k[term] = max(0.0, round(num / den, 1)) if den else 0.0
        model[f"{term}_points"] = len(rest)
    if os.path.exists(MODEL):
        with open(MODEL) as f:
            old = json.load(f)
        model["check"] = old.get("check") if old.get("coefficients") == model["coefficients"] else None
    with open(MODEL, "w") as f:
        json.dump(model, f, indent=1)
    print(json.dumps(model["coefficients"], indent=1))
    print("\nFor backends/src/cost.rs, CALIBRATED:")
    for term in LIST_TERMS + TREE_TERMS + FILTER_TERMS:
        print(f"    {term}: {model['coefficients'][term]:.1f},")


ESTIMATE = re.compile(r"(native route list|native matcher tree|filter) ([\d,]+)k")
FORMS = {"native route list": "list", "native matcher tree": "tree", "filter": "filter"}


def estimates(canaryc, policy, service, labels):
    cmd = [canaryc, "manifest", policy, "--kind", "envoy", "--backend", "auto", "--service", service, "--listen",
           "127.0.0.1:1", "--wasm", "/m.wasm", "--cluster", "v1=127.0.0.1:2", "--cluster", "v2=127.0.0.1:3"]
    for k, v in labels:
        cmd += ["--node-label", f"{k}={v}"]
    line = next((ln for ln in subprocess.run(cmd, capture_output=True, text=True).stderr.splitlines()
                 if ln.startswith(f"{service}:")), "")
    tail = line.partition("est. worst case per request:")[2]
    return {FORMS[m.group(1)]: float(m.group(2).replace(",", "")) * 1000 for m in ESTIMATE.finditer(tail)}


def check(paths, canaryc, write):
    work = os.path.join("/tmp", f"canary-cost-check-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    rows = []
    for r in records(paths):
        path = os.path.join(work, f"{r['kind']}-{r['n']}.canary")
        if not os.path.exists(path):
            with open(path, "w") as f:
                f.write(bs.policy_text(r["kind"], r["n"]))
        est = estimates(canaryc, path, bs.SERVICE, []).get(r["form"])
        if r["form"] == "tree" and r["kind"] in bs.GUARDED:
            # The printed worst case is the guard's walk of the list; the measured request took the lookup.
            est = None
        rows.append({"policy": f"{r['kind']} N={r['n']}", "form": r["form"], "measured": r["instructions"],
                     "estimated": est, "held_out": r["kind"] in HELD_OUT})
    with open(SCENARIO_RESULTS) as f:
        scen = {s["scenario"]: s for s in json.load(f)["scenarios"]["worker_net"]}
    for name, (policy, service, labels) in SCENARIOS.items():
        est = estimates(canaryc, os.path.join(ROOT, policy), service, labels)
        # Measured before trees existed: "lowered" was the route list.
        for variant, form in (("lowered", "list"), ("filter", "filter")):
            if variant in scen.get(name, {}):
                rows.append({"policy": f"scenario {name}", "form": form, "measured": scen[name][variant]["value"],
                             "estimated": est.get(form), "held_out": True})
    print("| policy | form | measured k instr/request | estimated (worst case) | error | |")
    print("|---|---|---:|---:|---:|---|")
    for row in rows:
        if row["estimated"] is None:
            continue
        row["error"] = row["estimated"] / row["measured"] - 1
        print(f"| {row['policy']} | {row['form']} | {row['measured'] / 1000:.1f} | {row['estimated'] / 1000:.0f} | "
              f"{row['error'] * 100:+.1f}% | {'held out' if row['held_out'] else 'fit'} |")
    for held in (False, True):
        errs = [abs(r["error"]) for r in rows if "error" in r and r["held_out"] == held]
        if errs:
            errs.sort()
            print(f"\n{'held-out' if held else 'training'}: {len(errs)} figures, |error| median "
                  f"{errs[len(errs) // 2] * 100:.1f}%, max {errs[-1] * 100:.1f}%")
    if write:
        with open(MODEL) as f:
            model = json.load(f)
        model["check"] = rows
        with open(MODEL, "w") as f:
            json.dump(model, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["fit", "check"])
    p.add_argument("results", nargs="*")
    p.add_argument("--canaryc", default=os.path.join(ROOT, "target/release/canaryc"))
    p.add_argument("--write", action="store_true", help="check: store the table in cost-model.json")
    args = p.parse_args()
    paths = args.results or sorted(glob.glob(os.path.join(ROOT, "bench", "results", "scale-*.json")))
    if not paths:
        sys.exit("no bench/results/scale-*.json: run make bench-scale first")
    if args.mode == "fit":
        fit(paths)
    else:
        check(paths, args.canaryc, args.write)


if __name__ == "__main__":
    main()
