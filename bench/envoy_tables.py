#!/usr/bin/env python3
"""Big tables in Envoy: instructions per request under callgrind for a service of N rules
`header x-tenant = "tenant-NNNNN" -> v2` plus `default v1`, written three ways by `canaryc manifest --kind envoy`:
`--backend native --native-tables list` (a route list Envoy walks), `--native-tables tree` (a matcher tree, one
lookup) and `--backend filter` (the canary wasm filter, which indexes such tables). The request carries the
benchmark's headers (bench/envoy_bench.py) and the last rule's tenant, so a list walks every route; `--miss`
also measures a request no rule takes (the default), and `--comma` one whose `x-tenant` holds a comma (the last
tenant, `,x` appended: no rule takes it), which a tree's comma guard sends to the whole route list — the path any
client can force, and what the cost model prices as a header tree's worst case.

Each configuration runs in turn under valgrind's callgrind with --concurrency 1, as `envoy_bench.py
--instructions` does: warm-up, then batches of sequential requests; the figure is the worker thread's
instructions per request net of its idle background (the count repeats to ±0.2 %). Every response must name
the subset the evaluator picks (v2 for the last tenant, v1 for the miss).

Run through bench/envoy-tables.sh; results in BENCHMARKS.md, "Big tables".
"""

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import envoy_bench as eb  # noqa: E402  (the upstream stand-in, callgrind dumps, readiness)

ROOT = eb.ROOT


def policy(n):
    rules = "".join(f'  header x-tenant = "tenant-{i:05d}" -> v2\n' for i in range(n))
    return f"service web {{\n{rules}  default v1\n}}\n"


def manifest(args, work, n, form, port, admin):
    path = os.path.join(work, f"t{n}.canary")
    with open(path, "w") as f:
        f.write(policy(n))
    cmd = [args.canaryc, "manifest", path, "--kind", "envoy", "--service", "web",
           "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}", "--wasm", args.wasm,
           "--cluster", f"v1=127.0.0.1:{args.upstream_ports[0]}", "--cluster", f"v2=127.0.0.1:{args.upstream_ports[1]}"]
    if form == "filter":
        cmd += ["--backend", "filter"]
    elif form == "tree":  # a tree whatever the size, to find where it starts to pay
        cmd += ["--backend", "native", "--native-tables", "tree", "--native-tree-min", "1"]
    else:
        cmd += ["--backend", "native", "--native-tables", "list"]
    out = os.path.join(work, f"{form}-{n}.yaml")
    with open(out, "w") as f:
        subprocess.run(cmd, check=True, stdout=f)
    return out


def send(port, n, tenant):
    counts = {}
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = dict(eb.REQUEST_HEADERS)
    headers.pop(eb.HEADER, None)
    if tenant is not None:
        headers["x-tenant"] = tenant
    for _ in range(n):
        conn.request("GET", "/?city=Paris", headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        counts[(resp.status, body)] = counts.get((resp.status, body), 0) + 1
    conn.close()
    return counts


def measure(args, work, n, form, tenant, expected, i):
    port, admin = args.base_port + 2 * i, args.base_port + 2 * i + 1
    for q in (port, admin):  # another Envoy there would answer in this one's place
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", q)) == 0:
                raise SystemExit(f"port {q} is in use; pass --base-port")
    cfg = manifest(args, work, n, form, port, admin)
    out = os.path.join(work, f"{form}-{n}.callgrind")
    logf = open(os.path.join(work, f"{form}-{n}.log"), "w")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--smc-check=all-non-file",
         "--separate-threads=yes", args.envoy, "-c", cfg, "--concurrency", "1", "--base-id", str(port),
         "-l", "warning", "--disable-hot-restart"], stdout=logf, stderr=subprocess.STDOUT)
    try:
        if not eb.wait_ready(admin, proc, timeout=3600) or proc.poll() is not None:
            raise SystemExit(f"{form}-{n}: Envoy did not become ready (see {work}/{form}-{n}.log)")
        counts = send(port, args.warmup, tenant)
        if set(counts) != {(200, expected)}:
            raise SystemExit(f"{form}-{n}: expected every answer to be {expected}, got {counts}")
        subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
        t0 = time.time()
        time.sleep(args.idle)
        idle, idle_s = eb.dump_threads(proc, out, 1), time.time() - t0
        per_request = []
        for batch in range(1, args.batches + 1):
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            t0 = time.time()
            send(port, args.requests, tenant)
            elapsed = time.time() - t0
            threads = eb.dump_threads(proc, out, batch + 1)
            worker = max(threads, key=threads.get)
            net = (threads[worker] - idle.get(worker, 0) / idle_s * elapsed) / args.requests
            per_request.append(net)
            eb.log(f"N={n:<6} {form:6s} {tenant!r} batch {batch}: "
                   f"{net / 1000:.1f}k instructions/request (worker, net)")
        return per_request
    finally:
        eb.stop(proc)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envoy", required=True)
    p.add_argument("--canaryc", default=os.path.join(ROOT, "target/debug/canaryc"))
    p.add_argument("--wasm", default=os.path.join(ROOT, "build/canary_filter.wasm"))
    p.add_argument("--sizes", default="10,1000,10000")
    p.add_argument("--forms", default="list,tree,filter")
    p.add_argument("--miss", action="store_true", help="also measure a request no rule takes")
    p.add_argument("--comma", action="store_true", help="also measure a request through the trees' comma guard")
    p.add_argument("--batches", type=int, default=3)
    p.add_argument("--requests", type=int, default=300, help="requests per batch")
    p.add_argument("--warmup", type=int, default=300)
    p.add_argument("--idle", type=float, default=5.0)
    p.add_argument("--base-port", type=int, default=21400)
    p.add_argument("--json", help="write raw results here")
    args = p.parse_args()
    args.upstream_admin = args.base_port + 90
    args.upstream_ports = [args.base_port + 91, args.base_port + 92]
    args.wrk_cpu = "0-1"
    sizes = [int(s) for s in args.sizes.split(",")]
    forms = args.forms.split(",")
    work = tempfile.mkdtemp(prefix="envoy-tables-")
    upstream = eb.start_upstream(args, work)
    results = {}
    try:
        i = 0
        for n in sizes:
            cases = [(f"tenant-{n - 1:05d}", "v2", "last")] + ([(None, "v1", "miss")] if args.miss else []) \
                + ([(f"tenant-{n - 1:05d},x", "v1", "comma")] if args.comma else [])
            for tenant, expected, what in cases:
                for form in forms:
                    results[f"{form}/{n}/{what}"] = measure(args, work, n, form, tenant, expected, i)
                    i += 1
    finally:
        eb.stop(upstream)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')}  Envoy under callgrind, --concurrency 1, worker thread net of "
          f"idle; {args.batches} batches × {args.requests} requests after {args.warmup} warm-up\n")
    whats = ["last"] + (["miss"] if args.miss else []) + (["comma"] if args.comma else [])
    print("| rules | request | " + " | ".join(f"{f} (k instr/req)" for f in forms) + " |")
    print("|---:|---|" + "---:|" * len(forms))
    for n in sizes:
        for what in whats:
            cells = [f"{statistics.median(results[f'{f}/{n}/{what}']) / 1000:.1f}" for f in forms]
            print(f"| {n} | {what} | " + " | ".join(cells) + " |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
