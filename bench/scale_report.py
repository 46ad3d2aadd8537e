#!/usr/bin/env python3
"""The table, goals and plot of `make bench-scale` from bench/bench_scale.py's results.

    bench/scale_report.py bench/results/scale-A.json [scale-B.json …] [--svg OUT.svg]

Results files are merged (later ones win for the same kind, N, form and figure), so a run of the instructions
and a run of the timings can be reported together. What `--backend auto` picks is asked of the canaryc built now
(target/release/canaryc), for each policy, so the goals judge the model in this tree, not the one the run had.

Goals (issue 24): every exact-table kind (exact header, `in`, path prefix, cookie, the sticky split behind a
table) costs at N = 10,000 at most 1.05× its N = 10 figure through the backend auto picks; auto's pick is never
more than 1.10× the cheapest measured form at any N; RSS at 10,000 rules is at most +20 MiB over a 10-rule
policy (through auto's pick).
"""

import argparse
import json
import os
import sys

import bench_scale as bs

TABLE_KINDS = ["header", "in", "prefix", "cookie", "sticky"]
FIGURES = ("instructions", "ready_s", "rss_mib", "push_ms", "refused")


def merged(paths):
    out = {}
    for p in paths:
        with open(p) as f:
            for r in json.load(f)["records"]:
                key = (r["kind"], r["n"], r["form"])
                rec = out.setdefault(key, {"kind": r["kind"], "n": r["n"], "form": r["form"]})
                rec.update({k: r[k] for k in FIGURES if k in r})
    return out


def auto_forms(recs, canaryc):
    """What this tree's canaryc picks for each measured policy (form, its line)."""
    work = os.path.join("/tmp", f"canary-scale-report-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    picks = {}
    for kind, n in sorted({(k, n) for k, n, _ in recs}):
        path = os.path.join(work, f"{kind}-{n}.canary")
        with open(path, "w") as f:
            f.write(bs.policy_text(kind, n))
        args = argparse.Namespace(canaryc=canaryc, wasm="/m.wasm")
        line = bs.auto_pick(args, path)
        picks[(kind, n)] = (bs.picked_form(line), line)
    return picks


def fmt_k(v):
    return f"{v / 1000:,.1f}k" if v is not None else "—"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+")
    p.add_argument("--canaryc", default=os.path.join(bs.ROOT, "target/release/canaryc"))
    p.add_argument("--svg", help="write the plot here (matplotlib)")
    p.add_argument("--json", help="write the table and goals here")
    args = p.parse_args()
    recs = merged(args.results)
    picks = auto_forms(recs, args.canaryc)
    kinds = [k for k in list(bs.KINDS) if any(r[0] == k for r in recs)]
    sizes = sorted({n for _, n, _ in recs})
    forms = [f for f in ("list", "tree", "filter") if any(r[2] == f for r in recs)]

    def get(kind, n, form, figure):
        return recs.get((kind, n, form), {}).get(figure)

    print("Envoy worker-thread instructions per request (callgrind, net of idle), request decided by the last rule "
          "(sticky: by the split after the table); auto = what `canaryc manifest --backend auto` picks now; "
          "auto ÷ cheapest compares worst cases, so a header tree (measured past its comma guard) is left out\n")
    print("| kind | N | " + " | ".join(forms) + " | auto picks | auto ÷ cheapest |")
    print("|---|---:|" + "---:|" * len(forms) + "---|---:|")
    rows = []
    for kind in kinds:
        for n in sizes:
            figures = {f: get(kind, n, f, "instructions") for f in forms}
            measured = {f: v for f, v in figures.items() if v is not None}
            if not measured:
                continue
            pick = picks[(kind, n)][0]
            # A tree on a header is measured past its comma guard; its worst case (any client's repeated header)
            # is the list walked after the guard, so it is no candidate for the cheapest worst case.
            candidates = {f: v for f, v in measured.items() if not (f == "tree" and kind in bs.GUARDED)}
            ratio = measured[pick] / min(candidates.values()) if pick in candidates else None
            rows.append({"kind": kind, "n": n, **{f: figures[f] for f in forms}, "auto": pick, "ratio": ratio})
            cells = [fmt_k(figures[f]) if figures[f] is not None else
                     ("refused" if get(kind, n, f, "refused") else "—") for f in forms]
            print(f"| {kind} | {n:,} | " + " | ".join(cells) + f" | {pick} | "
                  + (f"{ratio:.3f}" if ratio else "—") + " |")

    print("\nA fresh Envoy (no valgrind): exec → /ready, RSS after 200 requests, and one proxy's push → applied "
          "(ECDS for the filter, RDS for native forms) from the kind's 5-rule policy\n")
    print("| kind | N | " + " | ".join(f"{f} ready s / RSS MiB / push ms" for f in forms) + " |")
    print("|---|---:|" + "---:|" * len(forms))
    for kind in kinds:
        for n in sizes:
            cells = []
            for f in forms:
                r = get(kind, n, f, "ready_s")
                cells.append(f"{r:.2f} / {get(kind, n, f, 'rss_mib'):.1f} / {get(kind, n, f, 'push_ms'):.0f}"
                             if r is not None else "—")
            if any(c != "—" for c in cells):
                print(f"| {kind} | {n:,} | " + " | ".join(cells) + " |")

    goals = []
    lo, hi = min(sizes), max(sizes)
    for kind in TABLE_KINDS:
        a, b = picks.get((kind, lo)), picks.get((kind, hi))
        if not a or not b:
            continue
        x, y = get(kind, lo, a[0], "instructions"), get(kind, hi, b[0], "instructions")
        if x and y:
            goals.append({"goal": f"{kind}: N={hi:,} ≤ 1.05× N={lo} through auto", "value": y / x,
                          "met": y / x <= 1.05, "detail": f"{fmt_k(y)} ({b[0]}) vs {fmt_k(x)} ({a[0]})"})
        x, y = get(kind, lo, a[0], "rss_mib"), get(kind, hi, b[0], "rss_mib")
        if x and y:
            goals.append({"goal": f"{kind}: RSS at N={hi:,} ≤ +20 MiB over N={lo} through auto", "value": y - x,
                          "met": y - x <= 20, "detail": f"{y:.1f} MiB ({b[0]}) vs {x:.1f} MiB ({a[0]})"})
    worst = max((r for r in rows if r["ratio"]), key=lambda r: r["ratio"], default=None)
    if worst:
        goals.append({"goal": "auto's pick ≤ 1.10× the cheapest measured worst case, every kind and N",
                      "value": worst["ratio"], "met": worst["ratio"] <= 1.10,
                      "detail": f"worst: {worst['kind']} N={worst['n']:,} ({worst['auto']})"})
    print("\n| goal | figure | met |\n|---|---:|---|")
    for g in goals:
        unit = " MiB" if "RSS" in g["goal"] else "×"
        print(f"| {g['goal']} | {g['value']:+.1f}{unit} ({g['detail']}) | {'yes' if g['met'] else '**no**'} |"
              if unit == " MiB" else
              f"| {g['goal']} | {g['value']:.3f}{unit} ({g['detail']}) | {'yes' if g['met'] else '**no**'} |")

    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "goals": goals, "picks": {f"{k}-{n}": v[1] for (k, n), v in picks.items()}},
                      f, indent=1)
    if args.svg:
        plot(args.svg, kinds, sizes, forms, get, picks)


def plot(out, kinds, sizes, forms, get, picks):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 4
    rows = (len(kinds) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False, sharex=True)
    style = {"list": ("tab:red", "native route list"), "tree": ("tab:green", "native matcher tree"),
             "filter": ("tab:blue", "filter")}
    for ax, kind in zip(axes.flat, kinds):
        for f in forms:
            pts = [(n, get(kind, n, f, "instructions")) for n in sizes if get(kind, n, f, "instructions")]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] / 1000 for p in pts], "o-", color=style[f][0], label=style[f][1])
        auto = [(n, get(kind, n, picks[(kind, n)][0], "instructions")) for n in sizes if (kind, n) in picks]
        auto = [(n, v) for n, v in auto if v]
        if auto:
            ax.plot([p[0] for p in auto], [p[1] / 1000 for p in auto], "s", mfc="none", mec="black", ms=11,
                    label="auto's pick")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(kind)
        ax.grid(True, which="both", alpha=0.3)
    for ax in axes.flat[len(kinds):]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("k instructions / request")
    for ax in axes[-1, :]:
        ax.set_xlabel("rules (N)")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle("Envoy 1.40 instructions per request (callgrind), request decided by the last rule")
    fig.tight_layout()
    fig.savefig(out)
    print(f"\nplot: {os.path.relpath(out, bs.ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
