#!/usr/bin/env python3
"""`make bench-scale`: what a policy of N rules costs a proxy in each backend form, for N = 10 … 10,000.

For each rule kind (KINDS: exact header, `in` list, path prefix, cookie, literal `~`, regex `~`, a sticky split
behind an exact-header table, and a mixed policy held out from the cost model's fit) and each N, the policy is
`service svc { <N rules of the kind> default v1 }` and the request is decided by the *last* rule (the sticky
kind: by the split after the table) — the worst case for a route list. For each backend form that exists for
it (`canaryc manifest --kind envoy --backend native` = the native route list, `--native-tables tree` where this
canaryc has it, `--backend filter`) the driver measures, one Envoy 1.40 at a time (`--concurrency 1`, in front
of bench/envoy_bench.py's stand-in upstream):

- **instructions per request** under callgrind, Envoy's worker thread net of its idle background (the figure
  BENCHMARKS.md's scenario tables use; it repeats to ±0.1 %); batches are sized so every configuration costs
  about the same callgrind time, since a 10,000-route list costs 30× a 10-route one per request;
- **time to ready**: a fresh Envoy (no valgrind) from exec to admin `/ready` = 200 with the policy inline;
- **RSS** (`VmRSS`) of that Envoy after 200 requests;
- **push → applied**: an Envoy whose bootstrap watches the policy (`--ecds-path` for the filter, `--rds-path`
  for native forms), started with the kind's 5-rule policy, then the N-rule one renamed into the watched
  directory; from just before the rename until the subscription's `config_reload` counter moves (polled every
  5 ms), then the request must get its answer.

It also records what `canaryc manifest --backend auto` picks for each policy and the estimates it prints. Every
configuration's answers must be the expected subset (the same in every form) before it is measured.

Results go to bench/results/scale-<time>.json, appended configuration by configuration (a long run that is
stopped keeps what it measured); `bench/scale_report.py` prints the table and goals and draws the plot,
`bench/cost_fit.py` fits the cost model (backends/src/cost.rs) to them. Run through `make bench-scale`
(bench/bench-scale.sh builds what it needs); `--only-instructions`, `--skip-instructions`, `--kinds`, `--sizes`,
`--forms` select parts.
"""

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import yaml  # PyYAML: canaryc writes Envoy bootstraps as YAML

import envoy_bench as eb  # the stand-in upstream, callgrind dumps and Envoy plumbing

ROOT = eb.ROOT
SERVICE = "svc"
SIZES = [10, 100, 1000, 10000]


def tenant(i):
    return f"tenant-{i:05d}"


# kind -> (rule i as policy text, the request's edits for the last rule of N: (headers to set, path)).
# Every rule routes to v2 and the default is v1, so a request decided by the last rule answers v2.
KINDS = {
    "header": (lambda i: f'header x-tenant = "{tenant(i)}" -> v2',
               lambda n: ({"x-tenant": tenant(n - 1)}, "/")),
    "in": (lambda i: f'header x-tenant in ["{tenant(i)}-a", "{tenant(i)}-b"] -> v2',
           lambda n: ({"x-tenant": f"{tenant(n - 1)}-b"}, "/")),
    "prefix": (lambda i: f'path "/t{i:05d}/" -> v2',
               lambda n: ({}, f"/t{n - 1:05d}/forecast")),
    "cookie": (lambda i: f"cookie tenant={tenant(i)} -> v2",
               lambda n: ({"Cookie": dict(eb.REQUEST_HEADERS)["Cookie"] + f"; tenant={tenant(n - 1)}"}, "/")),
    "literal": (lambda i: f'header x-tenant ~ "{tenant(i)}" -> v2',
                lambda n: ({"x-tenant": f"org/{tenant(n - 1)}/eu"}, "/")),
    "regex": (lambda i: f'header x-tenant ~ "^{tenant(i)}$" -> v2',
              lambda n: ({"x-tenant": tenant(n - 1)}, "/")),
    # N exact-header rules, then a sticky split; the request matches no tenant, so the split decides.
    "sticky": (lambda i: f'header x-tenant = "{tenant(i)}" -> v2',
               lambda n: ({"x-tenant": "tenant-none", "x-user": "user-42"}, "/")),
    # Held out from the fit: the four table kinds interleaved (header, prefix, cookie, literal, …), last one decides.
    "mixed": (lambda i: [KINDS[k][0](i) for k in ("header", "prefix", "cookie", "literal")][i % 4],
              lambda n: [KINDS[k][1](n) for k in ("header", "prefix", "cookie", "literal")][(n - 1) % 4]),
}
TAILS = {"sticky": ["50% v2 by header x-user"]}
DEFAULT_KINDS = ["header", "in", "prefix", "cookie", "literal", "regex", "sticky"]
# Kinds whose tree reads a header (not `:path`), so has a comma guard (backends/src/native/tables.rs): its worst
# case, what canaryc prints and `auto` weighs, is the guard's walk of the whole list, which this bench's request
# (one value, no comma) does not take.
GUARDED = {"header", "in", "sticky"}


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def policy_text(kind, n):
    rule = KINDS[kind][0]
    lines = [f"service {SERVICE} {{"] + [f"  {rule(i)}" for i in range(n)]
    lines += [f"  {t}" for t in TAILS.get(kind, [])] + ["  default v1", "}"]
    return "\n".join(lines) + "\n"


def request(kind, n):
    """(headers, path) of the measured request: the bench's usual headers with the kind's edits."""
    edits, path = KINDS[kind][1](n)
    headers = dict(eb.REQUEST_HEADERS)
    for k, v in edits.items():
        headers.pop(k, None) if v is None else headers.__setitem__(k, v)
    return headers, path


def canaryc(args, *cmd, check=True):
    return subprocess.run([args.canaryc, *cmd], capture_output=True, text=True, check=check)


def has_tree(args):
    return "--native-tables" in canaryc(args, "manifest", "--help").stdout


FORM_FLAGS = {"list": ["--backend", "native"], "tree": ["--backend", "native", "--native-tables", "tree"],
              "filter": ["--backend", "filter"]}


def form_flags(args, form):
    flags = list(FORM_FLAGS[form])
    if form == "list" and args.tree:  # be explicit once the flag exists: the list form, whatever the default
        flags += ["--native-tables", "list"]
    return flags


def manifest(args, path, form, port, admin, extra=()):
    cmd = ["manifest", path, "--kind", "envoy", *form_flags(args, form), "--service", SERVICE,
           "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--wasm", args.wasm, *extra]
    for subset, up in zip(eb.UPSTREAM_SUBSETS, args.upstream_ports):
        cmd += ["--cluster", f"{subset}=127.0.0.1:{up}"]
    r = canaryc(args, *cmd, check=False)
    return r.stdout if r.returncode == 0 else None, r.stderr


def auto_pick(args, path):
    """What `--backend auto` says for the service: its stderr line (backend and estimates)."""
    cmd = ["manifest", path, "--kind", "envoy", "--backend", "auto", "--service", SERVICE, "--listen",
           "127.0.0.1:1", "--wasm", args.wasm, "--cluster", "v1=127.0.0.1:2", "--cluster", "v2=127.0.0.1:3"]
    r = canaryc(args, *cmd, check=False)
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith(f"{SERVICE}:")]
    return lines[0] if lines else r.stderr.strip()


def picked_form(line):
    """The form named by auto's line (`svc: native Envoy routes (…`, `svc: native Envoy routes as a matcher tree
    (…`, `svc: filter (…`)."""
    if line.startswith(f"{SERVICE}: filter"):
        return "filter"
    return "tree" if line.startswith(f"{SERVICE}: native Envoy routes as a matcher tree") else "list"


def start(args, bootstrap_yaml, name, port, wrapper=()):
    cfg = os.path.join(args.work, f"{name}.yaml")
    with open(cfg, "w") as f:
        f.write(bootstrap_yaml)
    logf = open(os.path.join(args.work, f"{name}.log"), "w")
    return subprocess.Popen([*wrapper, args.envoy, "-c", cfg, "--concurrency", "1", "--base-id", str(port), "-l",
                             "warning", "--disable-hot-restart"], stdout=logf, stderr=subprocess.STDOUT)


def send(port, headers, path, n):
    counts = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    for _ in range(n):
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        counts[body if resp.status == 200 else f"status {resp.status}"] = counts.get(body, 0) + 1
    conn.close()
    return counts


def answers(name, port, headers, path, expected, n=20):
    counts = send(port, headers, path, n)
    if list(counts) != [expected]:
        raise SystemExit(f"{name}: answers {counts}, expected all {expected}")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def wait_ready(admin, proc, timeout):
    """envoy_bench's, polled every 10 ms (its 0.2 s would round the ready time)."""
    return eb.wait_ready(admin, proc, timeout, poll=0.01)


def admin_stat(admin, name):
    c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
    c.request("GET", f"/stats?filter=^{name}$")
    text = c.getresponse().read().decode()
    c.close()
    for line in text.splitlines():
        k, _, v = line.partition(": ")
        if k == name:
            return int(v)
    return 0


def ports(args, slot):
    p = args.base_port + 2 * slot
    for q in (p, p + 1):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", q)) == 0:
                raise SystemExit(f"port {q} is in use; pass --base-port")
    return p, p + 1


def merged_bootstrap(bootstraps):
    """One bootstrap holding every configuration's listener (each on its own port), so one Envoy under
    callgrind pays the minutes valgrind takes to start (and V8 to compile the module) once per group. A listener's
    instructions per request do not depend on its neighbours: each has its own route table and filter
    configuration (the filters share one VM, as sidecars' plugins do; the module keeps a root context per
    configuration)."""
    merged = None
    for i, text in enumerate(bootstraps):
        b = yaml.safe_load(text)
        listener = b["static_resources"]["listeners"][0]
        listener["name"] = f"{listener['name']}-{i}"
        if merged is None:
            merged = b
        else:
            merged["static_resources"]["listeners"].append(listener)
    return yaml.safe_dump(merged)


def instructions(args, group, items):
    """Worker-thread instructions per request, net of idle (median of batches), under callgrind, for each of
    `items` ({name, port, bootstrap, headers, path, expected, estimate}) as listeners of one Envoy."""
    admin = items[0]["port"] + 1  # the first bootstrap's admin, which the merged one keeps
    out = os.path.join(args.work, f"{group}.callgrind")
    boot = merged_bootstrap([it["bootstrap"] for it in items])
    proc = start(args, boot, group, items[0]["port"], wrapper=(
        "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--smc-check=all-non-file",
        "--separate-threads=yes"))
    results = {}
    try:
        t0 = time.time()
        if not eb.wait_ready(admin, proc, timeout=3600):
            raise SystemExit(f"{group}: Envoy under callgrind did not become ready (log {args.work}/{group}.log)")
        log(f"  {group}: {len(items)} listeners ready under callgrind in {time.time() - t0:.0f} s")
        dump = 0
        for it in items:
            # Batches sized by the expected cost: a 10,000-route list costs 30× a short one per request.
            per_batch = max(args.min_requests, min(args.max_requests, int(args.batch_budget / it["estimate"])))
            answers(it["name"], it["port"], it["headers"], it["path"], it["expected"], n=per_batch)  # warm-up
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            t0 = time.time()
            time.sleep(args.idle)
            dump += 1
            idle, idle_s = eb.dump_threads(proc, out, dump), time.time() - t0
            runs = []
            for batch in range(args.batches):
                subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
                t0 = time.time()
                counts = send(it["port"], it["headers"], it["path"], per_batch)
                elapsed = time.time() - t0
                if list(counts) != [it["expected"]]:
                    raise SystemExit(f"{it['name']}: answers {counts} under callgrind")
                dump += 1
                threads = eb.dump_threads(proc, out, dump)
                worker = max(threads, key=threads.get)
                runs.append((threads[worker] - idle.get(worker, 0) / idle_s * elapsed) / per_batch)
            results[it["name"]] = {"instructions": statistics.median(runs), "runs": runs, "requests": per_batch}
            log(f"  {it['name']}: {statistics.median(runs) / 1000:.1f}k instructions/request "
                f"({', '.join(f'{r / 1000:.1f}k' for r in runs)}; {per_batch} requests a batch)")
        return results
    finally:
        eb.stop(proc)
        for f in os.listdir(args.work):
            if f.startswith(f"{group}.callgrind"):
                os.remove(os.path.join(args.work, f))


def ready_and_rss(args, name, bootstrap_yaml, headers, path, expected):
    """A fresh Envoy's exec → /ready time and its RSS after 200 requests."""
    port, admin = ports(args, 1)
    t0 = time.time()
    proc = start(args, bootstrap_yaml, name + "-ready", port)
    try:
        if not wait_ready(admin, proc, timeout=600):
            raise SystemExit(f"{name}: Envoy did not become ready (log {args.work}/{name}-ready.log)")
        ready = time.time() - t0
        answers(name, port, headers, path, expected, n=200)
        return {"ready_s": ready, "rss_mib": rss_mib(proc.pid)}
    finally:
        eb.stop(proc)


def push(args, name, kind, n, form, headers, path, expected):
    """Push → applied for one proxy watching its policy: the kind's 5-rule policy first, then N rules."""
    port, admin = ports(args, 2)
    watched_dir = os.path.join(args.work, f"{name}-watched")
    stage = os.path.join(args.work, f"{name}-stage")
    os.makedirs(watched_dir, exist_ok=True)
    os.makedirs(stage, exist_ok=True)
    watched = os.path.join(watched_dir, "policy.json")
    ecds = form == "filter"
    resource_kind = ["--kind", "ecds", "--wasm", args.wasm] if ecds else ["--kind", "rds", *form_flags(args, form)[2:]]

    def resource(policy, out):
        r = canaryc(args, "manifest", policy, *resource_kind, "--service", SERVICE, "-o", out, check=False)
        if r.returncode != 0:
            raise SystemExit(f"{name}: canaryc {resource_kind}: {r.stderr}")

    resource(small_policy(args, kind), watched)
    boot, err = manifest(args, small_policy(args, kind), form, port, admin,
                         extra=["--ecds-path" if ecds else "--rds-path", watched])
    if boot is None:
        raise SystemExit(f"{name}: {err}")
    stat = f"extension_config_discovery.http_filter.canary-{SERVICE}.config_reload" if ecds else \
        f"http.{SERVICE}.rds.{SERVICE}.config_reload"
    proc = start(args, boot, name + "-push", port)
    try:
        if not wait_ready(admin, proc, timeout=600):
            raise SystemExit(f"{name}: watching Envoy did not become ready (log {args.work}/{name}-push.log)")
        before = admin_stat(admin, stat)
        staged = os.path.join(stage, "policy.json")
        resource(policy_file(args, kind, n), staged)
        t0 = time.time()
        os.rename(staged, watched)
        while admin_stat(admin, stat) <= before:
            if time.time() - t0 > 600:
                raise SystemExit(f"{name}: {stat} did not move in 600 s")
            time.sleep(0.005)
        applied = time.time() - t0
        answers(name, port, headers, path, expected)
        return {"push_ms": applied * 1000, "push_rss_mib": rss_mib(proc.pid)}
    finally:
        eb.stop(proc)


def policy_file(args, kind, n):
    path = os.path.join(args.work, f"{kind}-{n}.canary")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(policy_text(kind, n))
    return path


def small_policy(args, kind):
    """The policy a pushed proxy starts with: 5 rules, so even the 10-rule push changes the resource."""
    return policy_file(args, kind, 5)


def expected_subset(args, kind, n):
    headers, path = request(kind, n)
    cmd = ["eval", policy_file(args, kind, n), "--service", SERVICE, "--path", path]
    for k, v in headers.items():
        cmd += ["--header", f"{k}: {v}"]
    out = canaryc(args, *cmd).stdout
    return out.split()[0] if out.strip() else None


def record(args, rec):
    args.records.append(rec)
    with open(args.json, "w") as f:
        json.dump({"meta": args.meta, "records": args.records}, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envoy", required=True)
    p.add_argument("--canaryc", default=os.path.join(ROOT, "target/release/canaryc"))
    p.add_argument("--wasm", default=os.path.join(ROOT, "build/canary_filter.wasm"))
    p.add_argument("--kinds", default=",".join(DEFAULT_KINDS), help="comma-separated: " + ",".join(KINDS))
    p.add_argument("--sizes", default=",".join(map(str, SIZES)))
    p.add_argument("--forms", default="list,tree,filter", help="list,tree,filter (tree only where canaryc has it)")
    p.add_argument("--only-instructions", action="store_true")
    p.add_argument("--skip-instructions", action="store_true")
    p.add_argument("--batches", type=int, default=2)
    p.add_argument("--batch-budget", type=float, default=1.2e8, help="instructions per callgrind batch")
    p.add_argument("--min-requests", type=int, default=40)
    p.add_argument("--max-requests", type=int, default=400)
    p.add_argument("--idle", type=float, default=5.0, help="seconds of idle background measured per Envoy")
    p.add_argument("--base-port", type=int, default=19600)
    p.add_argument("--json", required=True)
    args = p.parse_args()
    args.work = tempfile.mkdtemp(prefix="canary-scale-")
    args.tree = has_tree(args)
    forms = [f for f in args.forms.split(",") if f and (f != "tree" or args.tree)]
    args.meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "envoy": args.envoy, "tree": args.tree,
                 "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True,
                                          text=True).stdout.strip(),
                 "wasm_bytes": os.path.getsize(args.wasm), "batches": args.batches}
    args.records = []
    base = args.base_port + 10
    args.upstream_ports, args.upstream_admin, args.wrk_cpu = (base, base + 1), base + 2, "1"
    upstream = eb.start_upstream(args, args.work)
    try:
        for n in (int(s) for s in args.sizes.split(",")):
            groups = {form: [] for form in forms}
            for kind in args.kinds.split(","):
                path_ = policy_file(args, kind, n)
                expected = expected_subset(args, kind, n)
                headers, path = request(kind, n)
                pick = auto_pick(args, path_)
                log(f"{kind} N={n}: expect {expected}; auto: {pick}")
                for form in forms:
                    name = f"{kind}-{n}-{form}"
                    rec = {"kind": kind, "n": n, "form": form, "auto": pick, "auto_form": picked_form(pick),
                           "expected": expected}
                    boot, err = manifest(args, path_, form, *ports(args, 1))
                    if boot is None:
                        rec["refused"] = err.strip().splitlines()[0] if err.strip() else "refused"
                        log(f"  {name}: no such form ({rec['refused']})")
                        record(args, rec)
                        continue
                    if form == "tree" and boot == manifest(args, path_, "list", *ports(args, 1))[0]:
                        rec["refused"] = "no table run: the tree form is the route list"
                        log(f"  {name}: {rec['refused']}")
                        record(args, rec)
                        continue
                    if not args.skip_instructions:
                        port = args.base_port + 20 + 2 * len(groups[form])
                        estimate = 2.2e5 + (n * 700 if form == "list" else 0)
                        groups[form].append({"name": name, "port": port, "rec": rec, "headers": headers,
                                             "path": path, "expected": expected, "estimate": estimate,
                                             "bootstrap": manifest(args, path_, form, port, port + 1)[0]})
                    if not args.only_instructions:
                        rec.update(ready_and_rss(args, name, boot, headers, path, expected))
                        rec.update(push(args, name, kind, n, form, headers, path, expected))
                        log(f"  {name}: ready {rec['ready_s']:.2f} s, RSS {rec['rss_mib']:.1f} MiB, push → applied "
                            f"{rec['push_ms']:.0f} ms")
                    if args.skip_instructions:
                        record(args, rec)
            for form, items in groups.items():
                if items:
                    measured = instructions(args, f"n{n}-{form}", items)
                    for it in items:
                        it["rec"].update(measured[it["name"]])
                        record(args, it["rec"])
    finally:
        eb.stop(upstream)
        shutil.rmtree(args.work, ignore_errors=True)
    log(f"wrote {args.json}")


if __name__ == "__main__":
    main()
