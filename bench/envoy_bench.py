#!/usr/bin/env python3
"""Envoy throughput/latency benchmark: native header routing vs the canary wasm filter vs a Lua filter.

One run starts one Envoy per configuration (all `--concurrency 1`, pinned to the same core), then measures
them in alternation — round 1: every configuration once, round 2: every configuration again (rotated
order), … — with wrk pinned to the other core, so drift and other load on the machine hit every
configuration alike. Reported per configuration: the median over rounds of requests/s, latency p50/p99,
and Envoy CPU µs per request (utime+stime delta of that Envoy's /proc/PID/stat ÷ requests), plus the
ratio of each median round-wise ratio to native routing.

With --instructions it measures cost instead of speed: each configuration runs in turn under valgrind's
callgrind, and the figure is the user-space instructions Envoy executes per request (all threads; the kernel's
share, equal for every configuration, is not counted). Unlike req/s and CPU time on a shared VM, that count
repeats to within 0.2 % run after run, so it can rank changes worth 1 % of a request.

Run through bench/envoy-bench.sh (which builds the module and canaryc and finds Envoy); see BENCHMARKS.md.
"""

import argparse
import glob
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
HEADER = "x-canary-subset"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# What every configuration receives, byte for byte: a real Android Chrome user agent, a few cookies
# (including the S5 tester cookie), and a client-sent subset header (which native routing uses as is and
# which the filters must overwrite).
REQUEST_HEADERS = [
    ("Host", "frontend.weather.svc.cluster.local:8080"),
    ("User-Agent", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/124.0.0.0 Mobile Safari/537.36"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-GB,en;q=0.9"),
    ("Cookie", "session=9f2c4e1ab7d34c0e; theme=dark; user=tester; _ga=GA1.2.1234567890.1700000000"),
    ("X-Request-Id", "4f1c2a9e-7d3b-4c55-9a0e-2b6f8d1e3c47"),
    (HEADER, "v2"),
]

# name -> (kind, source, service, what the responses must be: a set of acceptable bodies)
CONFIGS = {
    "native": ("native", None, None, {"v2"}),
    "wasm-noop": ("noop", "bench/noop.wat", None, {"v2"}),
    "wasm-hostcalls": ("noop", "bench/hostcalls.wat", None, {"v2"}),
    "canary-default": ("wasm", "bench/policies/default.canary", "frontend", {"v2"}),
    "canary-s3": ("wasm", "examples/s3-chrome.canary", "forecast", {"v2"}),
    "canary-s4": ("wasm", "examples/s4-android-split.canary", "frontend", {"v1", "v2"}),
    "canary-s5": ("wasm", "examples/s5-tester-chain.canary", "frontend", {"v2"}),
    "canary-r100": ("wasm", "bench/policies/r100.canary", "frontend", {"v1", "v2"}),
    "lua-s3": ("lua", "bench/lua/s3.lua", None, {"v2"}),
    "lua-s4": ("lua", "bench/lua/s4.lua", None, {"v1", "v2"}),
}
SPLITS = {"canary-s4", "canary-r100", "lua-s4"}  # must show both subsets, roughly half each
DEFAULT_CONFIGS = list(CONFIGS)
# What each part of the proxy-wasm boundary costs (bench/boundary/*.wat; run them with --instructions):
# only on request when asked for with --configs.
for _part in ("callback", "callback-create", "read", "write", "read-write"):
    CONFIGS[f"boundary-{_part}"] = ("noop", f"bench/boundary/{_part}.wat", None, {"v2"})


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def route_config():
    def direct(body):
        return {"status": 200, "body": {"inline_string": body}}

    routes = [
        {"match": {"prefix": "/", "headers": [{"name": HEADER, "string_match": {"exact": s}}]},
         "direct_response": direct(s)}
        for s in ("v1", "v2")
    ]
    routes.append({"match": {"prefix": "/"}, "direct_response": direct("none")})
    return {"name": "bench", "virtual_hosts": [{"name": "all", "domains": ["*"], "routes": routes}]}


def wasm_filter(path, configuration):
    return {
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "canary",
                "vm_config": {"vm_id": "canary", "runtime": "envoy.wasm.runtime.v8",
                              "code": {"local": {"filename": path}}},
                "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                  "value": configuration},
            },
        },
    }


def bootstrap(name, port, admin, args, work):
    kind, source, service, _ = CONFIGS[name]
    wasm = args.variants.get(name.partition("@")[2], args.wasm)
    filters = []
    if kind == "noop":
        out = os.path.join(work, "noop.wasm")
        subprocess.run([args.wasm_as, os.path.join(ROOT, source), "-o", out], check=True)
        filters.append(wasm_filter(out, ""))
    elif kind == "wasm":
        compiled = subprocess.run([args.canaryc, "compile", os.path.join(ROOT, source)], check=True,
                                  capture_output=True, text=True).stdout
        policy = json.loads(compiled)
        policy.setdefault("settings", {})["service"] = service
        filters.append(wasm_filter(wasm, json.dumps(policy, separators=(",", ":"))))
    elif kind == "lua":
        with open(os.path.join(ROOT, source)) as f:
            code = f.read()
        filters.append({"name": "envoy.filters.http.lua", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code}}})
    filters.append({"name": "envoy.filters.http.router", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}})
    hcm = {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                 ".HttpConnectionManager",
        "stat_prefix": name,
        "codec_type": "HTTP1",
        "route_config": route_config(),
        "http_filters": filters,
    }

    def addr(p):
        return {"socket_address": {"address": "127.0.0.1", "port_value": p}}

    return {
        "node": {"id": f"bench-{name}", "cluster": "bench",
                 "metadata": {"LABELS": {"app": "frontend", "version": "v2"}}},
        "admin": {"address": addr(admin)},
        "static_resources": {"listeners": [{
            "name": name, "address": addr(port),
            "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                            "typed_config": hcm}]}]}]},
    }


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def wait_ready(port, proc, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/ready")
            if c.getresponse().status == 200:
                return True
        except OSError:
            pass
        time.sleep(0.2)
    return False


def check_responses(name, port, n=400):
    """The routing each configuration does, seen from outside: bodies name the route taken."""
    counts = send(port, n)
    expected = CONFIGS[name][3]
    ok = set(counts) <= expected
    if name in SPLITS:
        ok = ok and all(0.35 * n <= counts.get(s, 0) <= 0.65 * n for s in ("v1", "v2"))
    return ok, counts


def send(port, n):
    """N requests, one after another on one keep-alive connection; every one must succeed. Returns how many
    responses had each body (the body names the route taken)."""
    counts = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for _ in range(n):
        conn.request("GET", "/?city=Paris", headers=dict(REQUEST_HEADERS))
        resp = conn.getresponse()
        body = resp.read().decode()
        if resp.status != 200:
            raise SystemExit(f"port {port}: status {resp.status}")
        counts[body] = counts.get(body, 0) + 1
    conn.close()
    return counts


UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def parse_latency(text, pct):
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(m.group(1)) * UNITS[m.group(2)] if m else float("nan")


def run_wrk(args, port, duration):
    cmd = ["taskset", "-c", args.wrk_cpu, "wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    for k, v in REQUEST_HEADERS:
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://127.0.0.1:{port}/?city=Paris")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return out, reqs, errors.group(0) if errors else None


def measure(args, name, envoy):
    pid, port = envoy
    before_ticks, t0 = cpu_ticks(pid), time.time()
    out, reqs, errors = run_wrk(args, port, args.duration)
    elapsed, ticks = time.time() - t0, cpu_ticks(pid) - before_ticks
    if errors:
        raise SystemExit(f"{name}: wrk reported errors: {errors}\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return {"rps": rps, "requests": reqs, "elapsed": elapsed, "p50_us": parse_latency(out, 50),
            "p99_us": parse_latency(out, 99), "cpu_us_per_req": ticks / CLK_TCK * 1e6 / reqs,
            "envoy_cpu_util": ticks / CLK_TCK / elapsed}


def start_envoy(args, name, i, work, wrapper=()):
    """Writes NAME's bootstrap and starts its Envoy (as a child of this process); returns (proc, port, admin)."""
    port, admin = args.base_port + 2 * i, args.base_port + 2 * i + 1
    for q in (port, admin):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", q)) == 0:
                raise SystemExit(f"port {q} is in use; pass --base-port")
    cfg = os.path.join(work, f"{name}.json")
    with open(cfg, "w") as f:
        json.dump(bootstrap(name, port, admin, args, work), f, indent=1)
    logf = open(os.path.join(work, f"{name}.log"), "w")
    proc = subprocess.Popen(
        [*wrapper, args.envoy, "-c", cfg, "--concurrency", "1", "--base-id", str(40 + i), "-l", "warning",
         "--disable-hot-restart"],
        stdout=logf, stderr=subprocess.STDOUT)
    return proc, port, admin


def ready_and_routing(name, work, proc, port, admin, timeout=60):
    if not wait_ready(admin, proc, timeout):
        with open(os.path.join(work, f"{name}.log")) as f:
            raise SystemExit(f"envoy for {name} did not become ready:\n{f.read()[-3000:]}")
    ok, counts = check_responses(name, port)
    log(f"check {name:15s} routes {counts} {'ok' if ok else 'UNEXPECTED'}")
    if not ok:
        raise SystemExit(f"{name}: routing is not what the configuration should do: {counts}")




def callgrind_instructions(args, names, work):
    """Instructions per request for each configuration, Envoy under callgrind, one configuration at a time."""
    results = {}
    for i, name in enumerate(names):
        out = os.path.join(work, f"{name}.callgrind")
        proc, port, admin = start_envoy(args, name, i, work, wrapper=(
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--smc-check=all-non-file"))
        try:
            ready_and_routing(name, work, proc, port, admin, timeout=300)
            send(port, args.instr_warmup)  # until V8 code, caches and pools reach their steady state
            per_request = []
            for _ in range(args.instr_batches):
                subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
                send(port, args.instr_requests)
                subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
                dumps = glob.glob(f"{out}.{proc.pid}.*")
                newest = max(dumps, key=lambda d: int(d.rsplit(".", 1)[1]))
                with open(newest) as f:
                    total = int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))
                per_request.append(total / args.instr_requests)
            log(f"{name:15s} " + "  ".join(f"{x / 1000:.2f}k" for x in per_request) + " instructions/request")
            results[name] = per_request
        finally:
            proc.terminate()
            proc.wait(timeout=60)
    return results


def report_instructions(args, names, results):
    native = statistics.median(results["native"])
    print(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')}  Envoy under callgrind, --concurrency 1; "
          f"{args.instr_batches} batches × {args.instr_requests} sequential requests after {args.instr_warmup} "
          f"warm-up; module {os.path.getsize(args.wasm)} bytes {args.label}")
    print()
    print("| configuration | k instructions/request (min–max) | above native | × native by instructions |")
    print("|---|---:|---:|---:|")
    rows = []
    for name in names:
        med = statistics.median(results[name])
        rows.append({"config": name, "instructions": med, "min": min(results[name]), "max": max(results[name]),
                     "ratio": native / med})
        print(f"| {name} | {med / 1000:.1f} ({min(results[name]) / 1000:.1f}–{max(results[name]) / 1000:.1f}) | "
              f"{(med - native) / 1000:+.1f}k | {native / med:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mode": "instructions", "rows": rows, "runs": results}, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envoy", required=True)
    p.add_argument("--canaryc", default=os.path.join(ROOT, "target/release/canaryc"))
    p.add_argument("--wasm", default=os.path.join(ROOT, "build/canary_filter.wasm"))
    p.add_argument("--wasm-as", default=os.path.join(ROOT, "build/node/node_modules/.bin/wasm-as"))
    p.add_argument("--configs", default=",".join(DEFAULT_CONFIGS),
                   help="comma-separated subset of: " + ",".join(CONFIGS))
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--duration", type=int, default=10, help="seconds per measurement")
    p.add_argument("--warmup", type=int, default=3, help="seconds of unrecorded load per configuration first")
    p.add_argument("--connections", type=int, default=16)
    p.add_argument("--envoy-cpu", default="0")
    p.add_argument("--wrk-cpu", default="1")
    p.add_argument("--base-port", type=int, default=19200)
    p.add_argument("--variant", action="append", default=[], metavar="LABEL=PATH",
                   help="also measure another build of the module: every canary-* configuration is repeated "
                        "as canary-*@LABEL with PATH (A/B of an optimization in the same run)")
    p.add_argument("--json", help="write raw results here")
    p.add_argument("--label", default="", help="free text stored with the results (e.g. the module variant)")
    p.add_argument("--instructions", action="store_true",
                   help="count Envoy's instructions per request under callgrind instead of running wrk")
    p.add_argument("--instr-batches", type=int, default=3)
    p.add_argument("--instr-requests", type=int, default=1000, help="requests per callgrind batch")
    p.add_argument("--instr-warmup", type=int, default=1000)
    args = p.parse_args()
    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    args.variants = {}
    for v in args.variant:
        label, _, path = v.partition("=")
        args.variants[label] = os.path.abspath(path)
        for n in [n for n in names if n.startswith("canary-")]:
            CONFIGS[f"{n}@{label}"] = CONFIGS[n]
            if n in SPLITS:
                SPLITS.add(f"{n}@{label}")
            names.append(f"{n}@{label}")
    for n in names:
        if n not in CONFIGS:
            raise SystemExit(f"unknown configuration {n}; known: {', '.join(CONFIGS)}")
    if "native" not in names:
        names.insert(0, "native")
    tools = ("valgrind", "callgrind_control") if args.instructions else ("wrk", "taskset")
    for tool in tools:
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install -y valgrind wrk util-linux)")

    work = tempfile.mkdtemp(prefix="canary-bench-")
    if args.instructions:
        try:
            results = callgrind_instructions(args, names, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report_instructions(args, names, results)
        return
    procs, envoys = [], {}
    try:
        for i, name in enumerate(names):
            proc, port, admin = start_envoy(args, name, i, work, wrapper=("taskset", "-c", args.envoy_cpu))
            procs.append(proc)
            envoys[name] = (proc.pid, port)
        for name in names:
            pid, port = envoys[name]
            proc = next(p for p in procs if p.pid == pid)
            ready_and_routing(name, work, proc, port, port + 1)
        if args.warmup:
            for name in names:
                run_wrk(args, envoys[name][1], args.warmup)
        results = {n: [] for n in names}
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                m = measure(args, name, envoys[name])
                m["round"] = r
                results[name].append(m)
                log(f"round {r + 1}/{args.rounds} {name:15s} {m['rps']:9.0f} req/s  p50 {m['p50_us']:6.0f} µs  "
                    f"p99 {m['p99_us']:6.0f} µs  {m['cpu_us_per_req']:5.1f} µs CPU/req  "
                    f"envoy core {m['envoy_cpu_util'] * 100:3.0f}%")
        for name in names:  # logs of wasm refusals etc. would show here
            with open(os.path.join(work, f"{name}.log")) as f:
                tail = [ln for ln in f.read().splitlines() if "error" in ln.lower() or "critical" in ln.lower()]
            if tail:
                log(f"{name}: envoy log errors:\n  " + "\n  ".join(tail[-5:]))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(work, ignore_errors=True)

    report(args, names, results)


def report(args, names, results):
    native = results["native"]
    rows = []
    for name in names:
        runs = results[name]
        # Ratio per round (side by side in time), then the median: robust to drift and other load.
        ratios = [m["rps"] / native[i]["rps"] for i, m in enumerate(runs)]
        # Native CPU per request ÷ this one's: the throughput ratio Envoy would reach with its core to itself
        # (less sensitive than req/s to other load on a shared machine).
        cpu_ratios = [native[i]["cpu_us_per_req"] / m["cpu_us_per_req"] for i, m in enumerate(runs)]
        med = {k: statistics.median(m[k] for m in runs) for k in ("rps", "p50_us", "p99_us", "cpu_us_per_req")}
        rows.append({"config": name, **med, "ratio": statistics.median(ratios),
                     "ratio_min": min(ratios), "ratio_max": max(ratios),
                     "cpu_ratio": statistics.median(cpu_ratios)})
    cpu = open("/proc/cpuinfo").read()
    model = re.search(r"model name\s*:\s*(.*)", cpu)
    meta = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "nproc": os.cpu_count(),
            "cpu": model.group(1) if model else "?", "rounds": args.rounds, "duration_s": args.duration,
            "connections": args.connections, "label": args.label,
            "wasm_bytes": os.path.getsize(args.wasm) if os.path.exists(args.wasm) else None}
    print(f"\n{meta['date']}  {meta['nproc']} CPUs ({meta['cpu']}), Envoy --concurrency 1 on CPU {args.envoy_cpu}, "
          f"wrk -t1 -c{args.connections} on CPU {args.wrk_cpu}; median of {args.rounds} × {args.duration} s "
          f"alternating; module {meta['wasm_bytes']} bytes {args.label}")
    print()
    print("| configuration | req/s | × native req/s (min–max) | p50 µs | p99 µs | Envoy CPU µs/req | × native by CPU |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['config']} | {r['rps']:.0f} | {r['ratio']:.3f} ({r['ratio_min']:.2f}–{r['ratio_max']:.2f}) | "
              f"{r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['cpu_us_per_req']:.1f} | {r['cpu_ratio']:.3f} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
