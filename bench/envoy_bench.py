#!/usr/bin/env python3
"""Envoy throughput/latency benchmark: native header routing vs the canary wasm filter vs a Lua filter vs the
same job written with the proxy-wasm Rust SDK (bench/sdk-filter, configurations sdk-s3/sdk-s4).

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

With --configs scenarios (or one scenario: s1, s2-50, s2-100, s3, s4, s5-frontend, s5-forecast-v1|v2, s6) it
measures S1–S6 as the weather mesh's proxies serve them, in front of a stand-in upstream: the routes
`canaryc manifest --backend native` generates against the same bootstrap with the routes an operator writes by
hand (bench/native/*.yaml), the canary filter, Lua and the proxy-wasm floor; S6 (TCP) per connection. Before
measuring, each scenario's hand-written, generated and filter configurations must route a set of probe requests
alike.

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

import yaml  # PyYAML: canaryc writes Envoy bootstraps as YAML

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
    "canary-s3-log": ("wasm", "examples/s3-chrome.canary", "forecast", {"v2"}),
    "canary-s4": ("wasm", "examples/s4-android-split.canary", "frontend", {"v1", "v2"}),
    "canary-s5": ("wasm", "examples/s5-tester-chain.canary", "frontend", {"v2"}),
    "canary-r100": ("wasm", "bench/policies/r100.canary", "frontend", {"v1", "v2"}),
    "lua-s3": ("lua", "bench/lua/s3.lua", None, {"v2"}),
    "lua-s4": ("lua", "bench/lua/s4.lua", None, {"v1", "v2"}),
    # bench/sdk-filter: S3/S4 as an idiomatic proxy-wasm Rust SDK filter (the source is its configuration)
    "sdk-s3": ("sdk", "s3", None, {"v2"}),
    "sdk-s4": ("sdk", "s4", None, {"v1", "v2"}),
}
SPLITS = {"canary-s4", "canary-r100", "lua-s4", "sdk-s4"}  # must show both subsets, roughly half each
# Settings added to a configuration's policy: canary-s3-log is canary-s3 with the decision written into filter
# state for access logs (settings.access_log; no access logger, so only the filter's cost is measured).
EXTRA_SETTINGS = {"canary-s3-log": {"access_log": True}}
DEFAULT_CONFIGS = [n for n in CONFIGS if n not in EXTRA_SETTINGS]
# What each part of the proxy-wasm boundary costs (bench/boundary/*.wat; run them with --instructions):
# only on request when asked for with --configs.
for _part in ("callback", "callback-create", "read", "write", "read-write"):
    CONFIGS[f"boundary-{_part}"] = ("noop", f"bench/boundary/{_part}.wat", None, {"v2"})

# The scenarios S1–S6 as a proxy of the weather mesh serves them, each in front of the same stand-in upstream
# (a second Envoy, not measured, answering with the subset's name): for every scenario the bootstrap
# `canaryc manifest --kind envoy` generates with `--backend native` (".lowered") and `--backend filter`
# (".filter"), and that same bootstrap with the routes replaced by the ones an operator would write by hand
# (".hand", bench/native/*.yaml), so the route table is the only difference. ".lua" swaps the filter of the
# ".filter" bootstrap for bench/lua/*.lua, "floor.*" for a proxy-wasm module without logic.
# name -> (policy, service, node labels, protocol, what REQUEST_HEADERS must reach: {subset: share})
SCENARIOS = {
    "s1": ("examples/s1-all-v1.canary", "frontend", [], "http", {"v1": 1.0}),
    "s2-50": ("examples/s2-forecast-50.canary", "forecast", [], "http", {"v1": 0.5, "v2": 0.5}),
    "s2-100": ("examples/s2-forecast-100.canary", "forecast", [], "http", {"v2": 1.0}),
    "s3": ("examples/s3-chrome.canary", "forecast", [], "http", {"v2": 1.0}),
    "s4": ("examples/s4-android-split.canary", "frontend", [], "http", {"v1": 0.5, "v2": 0.5}),
    "s5-frontend": ("examples/s5-tester-chain.canary", "frontend", [], "http", {"v2": 1.0}),
    "s5-forecast-v1": ("examples/s5-tester-chain.canary", "forecast", [("version", "v1")], "http", {"v1": 1.0}),
    "s5-forecast-v2": ("examples/s5-tester-chain.canary", "forecast", [("version", "v2")], "http", {"v2": 1.0}),
    "s6": ("examples/s6-tcp-split.canary", "tcp-echo", [], "tcp", {"v1": 0.8, "v2": 0.2}),
}
# The proxy-wasm floor that applies to each scenario: the host calls its decision needs and nothing else.
FLOORS = {
    "floor.read-write": ("s3", "bench/hostcalls.wat", {"v2": 1.0}),  # read user-agent, write the header
    "floor.write": ("s1", "bench/hostcalls-write.wat", {"v2": 1.0}),  # write the header only
    "floor.tcp": ("s6", "bench/noop-tcp.wat", {"v1": 1.0}),  # the network callbacks, no host call
}
FLOOR_OF = {"s3": "floor.read-write", "s4": "floor.read-write", "s5-frontend": "floor.read-write",
            "s6": "floor.tcp"}
UPSTREAM_SUBSETS = ("v1", "v2")
# Their CONFIGS entries: ("scenario", (scenario, variant), the floor's module or None, {subset: share}).
SCENARIO_CONFIGS = []
for _s in SCENARIOS:
    _variants = ["hand", "lowered", "filter"] + (["hand-regex"] if _s == "s4" else []) + (
        ["lua"] if _s in ("s3", "s4") else [])
    for _v in _variants:
        CONFIGS[f"{_s}.{_v}"] = ("scenario", (_s, _v), None, SCENARIOS[_s][4])
        SCENARIO_CONFIGS.append(f"{_s}.{_v}")
for _f, (_s, _wat, _expected) in FLOORS.items():
    CONFIGS[_f] = ("scenario", (_s, "floor"), _wat, _expected)
    SCENARIO_CONFIGS.append(_f)
# Groups for --configs: every scenario configuration, or one scenario's (with its floor).
GROUPS = {"scenarios": SCENARIO_CONFIGS}
for _s in SCENARIOS:
    GROUPS[_s] = [n for n in SCENARIO_CONFIGS if n.startswith(f"{_s}.")] + [FLOOR_OF.get(_s, "floor.write")]


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
    if kind == "scenario":
        return scenario_bootstrap(name, port, admin, args, work)
    wasm = args.variants.get(name.partition("@")[2], args.wasm)
    filters = []
    if kind == "noop":
        out = assemble(args, source, work, name)
        filters.append(wasm_filter(out, ""))
    elif kind == "wasm":
        compiled = subprocess.run([args.canaryc, "compile", os.path.join(ROOT, source)], check=True,
                                  capture_output=True, text=True).stdout
        policy = json.loads(compiled)
        policy.setdefault("settings", {})["service"] = service
        policy["settings"].update(EXTRA_SETTINGS.get(name.partition("@")[0], {}))
        filters.append(wasm_filter(wasm, json.dumps(policy, separators=(",", ":"))))
    elif kind == "sdk":  # the canary bootstrap with the SDK peer's module, which takes "s3"/"s4" as configuration
        filters.append(wasm_filter(args.sdk_wasm, source))
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


def assemble(args, wat, work, name):
    """Assembles bench/*.wat into NAME.wasm (one file per configuration: Envoys read it while others start)."""
    out = os.path.join(work, f"{name}.wasm")
    subprocess.run([args.wasm_as, os.path.join(ROOT, wat), "-o", out], check=True)
    return out


# ----- the scenarios as a proxy serves them (SCENARIOS) ------------------------------------------------------

def is_tcp(name):
    kind, source = CONFIGS[name][:2]
    return kind == "scenario" and SCENARIOS[source[0]][3] == "tcp"


def manifest(args, scenario, backend, port, admin):
    """`canaryc manifest --kind envoy` for SCENARIO's proxy, its subsets on the stand-in upstream."""
    policy, service, labels, protocol, _ = SCENARIOS[scenario]
    cmd = [args.canaryc, "manifest", os.path.join(ROOT, policy), "--kind", "envoy", "--backend", backend,
           "--service", service, "--listen", f"127.0.0.1:{port}", "--admin", f"127.0.0.1:{admin}",
           "--wasm", args.wasm, "--protocol", protocol]
    for subset, up in zip(UPSTREAM_SUBSETS, args.upstream_ports):
        cmd += ["--cluster", f"{subset}=127.0.0.1:{up}"]
    for k, v in labels:
        cmd += ["--node-label", f"{k}={v}"]
    return yaml.safe_load(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def listener_filters(bootstrap):
    return bootstrap["static_resources"]["listeners"][0]["filter_chains"][0]["filters"]


def scenario_bootstrap(name, port, admin, args, work):
    """NAME's bootstrap: a generated one as is (lowered, filter) or with one part swapped (hand: the routes;
    lua, floor: the wasm filter), so that part is the only difference between the configurations compared."""
    _, (scenario, variant), wat, _ = CONFIGS[name]
    if variant in ("lowered", "filter"):
        return manifest(args, scenario, "native" if variant == "lowered" else "filter", port, admin)
    if variant.startswith("hand"):
        b = manifest(args, scenario, "native", port, admin)
        suffix = variant.partition("-")[2]
        with open(os.path.join(BENCH, "native", f"{scenario}{'-' + suffix if suffix else ''}.yaml")) as f:
            hand = yaml.safe_load(f)
        last = listener_filters(b)[-1]["typed_config"]
        if "tcp_proxy" in hand:
            for field in ("cluster", "weighted_clusters"):
                last.pop(field, None)
            last.update(hand["tcp_proxy"])
        else:
            last["route_config"]["virtual_hosts"][0]["routes"] = hand["routes"]
        return b
    b = manifest(args, scenario, "filter", port, admin)
    filters = listener_filters(b)
    if variant == "floor":
        chain = filters + filters[0]["typed_config"].get("http_filters", [])  # network filters or HTTP ones
        wasm = next(f for f in chain if f["name"].endswith(".wasm"))["typed_config"]["config"]
        wasm["vm_config"]["code"]["local"]["filename"] = assemble(args, wat, work, name)
        wasm["configuration"]["value"] = ""
    elif variant == "lua":
        with open(os.path.join(BENCH, "lua", f"{scenario}.lua")) as f:
            code = f.read()
        http_filters = filters[0]["typed_config"]["http_filters"]
        http_filters[0] = {"name": "envoy.filters.http.lua", "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": code}}}
    else:
        raise SystemExit(f"{name}: unknown variant {variant}")
    return b


def upstream_bootstrap(args):
    """The stand-in subsets: one listener per subset answering with its name, directly from Envoy."""
    def addr(p):
        return {"socket_address": {"address": "127.0.0.1", "port_value": p}}

    def listener(subset, p):
        hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3"
                        ".HttpConnectionManager",
               "stat_prefix": subset,
               "route_config": {"virtual_hosts": [{"name": "all", "domains": ["*"], "routes": [{
                   "match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": subset}}}]}]},
               "http_filters": [{"name": "envoy.filters.http.router", "typed_config": {
                   "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
        return {"name": subset, "address": addr(p), "filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager", "typed_config": hcm}]}]}

    return {"node": {"id": "bench-upstream", "cluster": "bench"},
            "admin": {"address": addr(args.upstream_admin)},
            "static_resources": {"listeners": [listener(s, p) for s, p in zip(UPSTREAM_SUBSETS, args.upstream_ports)]}}


def start_upstream(args, work):
    """Starts the stand-in upstream Envoy (pinned to wrk's core: the measured Envoy keeps its own)."""
    cfg = os.path.join(work, "upstream.json")
    with open(cfg, "w") as f:
        json.dump(upstream_bootstrap(args), f, indent=1)
    logf = open(os.path.join(work, "upstream.log"), "w")
    proc = subprocess.Popen(["taskset", "-c", args.wrk_cpu, args.envoy, "-c", cfg, "--concurrency", "1",
                             "--base-id", str(args.upstream_admin), "-l", "warning", "--disable-hot-restart"],
                            stdout=logf, stderr=subprocess.STDOUT)
    if not wait_ready(args.upstream_admin, proc):
        raise SystemExit("the stand-in upstream Envoy did not become ready (see upstream.log)")
    return proc


def tcp_payload(headers):
    """What a TCP client sends through S6's proxy: an HTTP request the upstream answers, then closes."""
    lines = "".join(f"{k}: {v}\r\n" for k, v in headers)
    return f"GET /?city=Paris HTTP/1.1\r\n{lines}Connection: close\r\n\r\n".encode()


def send_tcp(port, n, headers=None):
    """N connections, one after another, each one request and its answer; returns the counts per body. The
    client closes once the answer is complete, as wrk and curl do (the upstream's own close comes only after
    Envoy's delayed-close timeout, 1 s)."""
    payload, counts = tcp_payload(headers or REQUEST_HEADERS), {}
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
            s.sendall(payload)
            data, body = b"", None
            while body is None or len(body) < length:
                chunk = s.recv(65536)
                if not chunk:
                    raise SystemExit(f"port {port}: connection closed after {data[:80]!r}")
                data += chunk
                head, sep, rest = data.partition(b"\r\n\r\n")
                if sep:
                    if not head.startswith(b"HTTP/1.1 200"):
                        raise SystemExit(f"port {port}: {head[:80]!r}")
                    length = int(re.search(rb"(?im)^content-length:\s*(\d+)", head).group(1))
                    body = rest
        counts[body.decode()] = counts.get(body.decode(), 0) + 1
    return counts


def send_to(name, port, n):
    return send_tcp(port, n) if is_tcp(name) else send(port, n)


# Requests that tell the policies apart: user agents (Android and what only looks like it: Windows Phone says
# "Android" too, Kindle's Silk does not), with and without the tester cookie; each sent PROBE_N times.
PROBE_AGENTS = [
    dict(REQUEST_HEADERS)["User-Agent"],
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; U; en-us; KFAPWI Build/JDQ39) AppleWebKit/535.19 (KHTML, like Gecko) Silk/3.13 "
    "Safari/535.19 Silk-Accelerated=true",
    "Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.15063",
    None,
]
PROBE_COOKIES = ["session=9f2c4e1ab7d34c0e; theme=dark; user=tester", "user=testers; theme=dark", None]
PROBE_N = 30
TCP_PROBE_N = 60
# The configurations whose routing must agree probe by probe (Lua and the floors only route the bench request
# the policy's way: lua/s4.lua looks for "Android" alone).
AGREEING = ("hand", "hand-regex", "lowered", "filter")


def probe_requests():
    out = []
    for ua in PROBE_AGENTS:
        for cookie in PROBE_COOKIES:
            h = [(k, v) for k, v in REQUEST_HEADERS if k not in ("User-Agent", "Cookie")]
            if ua is not None:
                h.append(("User-Agent", ua))
            if cookie is not None:
                h.append(("Cookie", cookie))
            out.append(h)
    return out


def probe(name, port):
    """The set of subsets each probe request reached."""
    if is_tcp(name):
        return [sorted(send_tcp(port, TCP_PROBE_N))]
    answers = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    for headers in probe_requests():
        seen = set()
        for _ in range(PROBE_N):
            conn.request("GET", "/?city=Paris", headers=dict(headers))
            resp = conn.getresponse()
            seen.add(resp.read().decode() if resp.status == 200 else f"status {resp.status}")
        answers.append(sorted(seen))
    conn.close()
    return answers


def routing_agrees(args, names, work):
    """Before measuring: each scenario's hand-written, generated and filter configurations (plain Envoys, all
    started at once) must send every probe request to the same subsets."""
    groups = {}
    for n in names:
        kind, source = CONFIGS[n][:2]
        if kind == "scenario" and source[1] in AGREEING:
            groups.setdefault(source[0], []).append(n)
    for scenario, members in groups.items():
        procs = []
        try:
            for i, n in enumerate(members):
                proc, port, admin = start_envoy(args, n, i, work)
                procs.append((n, proc, port, admin))
            answers = {}
            for n, proc, port, admin in procs:
                ready_and_routing(n, work, proc, port, admin)
                answers[n] = probe(n, port)
        finally:
            for _, proc, _, _ in procs:
                proc.terminate()
                proc.wait(timeout=30)
        first = members[0]
        for n in members[1:]:
            if answers[n] != answers[first]:
                diff = [(i, a, b) for i, (a, b) in enumerate(zip(answers[first], answers[n])) if a != b]
                raise SystemExit(f"{scenario}: {n} routes differently from {first} (probe, {first}, {n}): {diff}")
        requests = len(answers[first]) * (TCP_PROBE_N if is_tcp(first) else PROBE_N)
        seen = " ".join("/".join(a) for a in answers[first])
        log(f"agree {scenario:15s} {', '.join(members)}: {requests} requests each, subsets per probe: {seen}")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15)


def wait_ready(port, proc, timeout=60, poll=0.2):
    """Polls admin /ready every `poll` seconds until it answers 200, the process exits or `timeout` passes."""
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
        time.sleep(poll)
    return False


def check_responses(name, port, n=400):
    """The routing each configuration does, seen from outside: bodies name the route taken."""
    counts = send_to(name, port, n)
    expected = CONFIGS[name][3]
    ok = set(counts) <= set(expected)
    if name in SPLITS:
        ok = ok and all(0.35 * n <= counts.get(s, 0) <= 0.65 * n for s in ("v1", "v2"))
    if isinstance(expected, dict):  # {subset: share}: each within ±0.15 (over 6σ at n = 400)
        ok = ok and all(abs(counts.get(s, 0) / n - share) <= 0.15 for s, share in expected.items())
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


def run_wrk(args, name, port, duration):
    cmd = ["taskset", "-c", args.wrk_cpu, "wrk", "-t1", f"-c{args.connections}", f"-d{duration}s", "--latency"]
    # Through a TCP proxy each request is a connection of its own: wrk reconnects after `Connection: close`.
    for k, v in REQUEST_HEADERS + ([("Connection", "close")] if is_tcp(name) else []):
        cmd += ["-H", f"{k}: {v}"]
    cmd.append(f"http://127.0.0.1:{port}/?city=Paris")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return out, reqs, errors.group(0) if errors else None


def measure(args, name, envoy):
    pid, port = envoy
    before_ticks, t0 = cpu_ticks(pid), time.time()
    out, reqs, errors = run_wrk(args, name, port, args.duration)
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
        [*wrapper, args.envoy, "-c", cfg, "--concurrency", "1", "--base-id", str(port), "-l", "warning",
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




def dump_threads(proc, out, dump):
    """Dumps callgrind's counters: one file per thread (`.DUMP-THREAD`); returns {thread: instructions}."""
    subprocess.run(["callgrind_control", "-d", str(proc.pid)], check=True, capture_output=True)
    threads = {}
    for path in glob.glob(f"{out}.{proc.pid}.{dump}-*"):
        with open(path) as f:
            threads[int(path.rsplit("-", 1)[1])] = int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))
    if not threads:
        raise SystemExit(f"no callgrind dump {out}.{proc.pid}.{dump}-*: {sorted(glob.glob(out + '*'))}")
    return threads


def callgrind_instructions(args, names, work):
    """Instructions per request for each configuration, Envoy under callgrind, one configuration at a time.

    Per batch: every thread's instructions ÷ requests (the figure of the first two sessions), and the worker
    thread's alone (the one with most: with --concurrency 1 it carries every request), both also net of what
    Envoy executes with no request in flight (its timers: stats flush on the main thread, the dispatcher's and
    the wasm tick on the worker), measured per second before the batches and subtracted for the batch's wall
    time. Under callgrind a request takes ~50× its normal time, so that background is a visible share that
    grows with the machine's load; net of it, identical route tables agree to ±0.1 %."""
    results = {}
    for i, name in enumerate(names):
        out = os.path.join(work, f"{name}.callgrind")
        proc, port, admin = start_envoy(args, name, i, work, wrapper=(
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}.%p", "--smc-check=all-non-file",
            "--separate-threads=yes"))
        try:
            ready_and_routing(name, work, proc, port, admin, timeout=1800)  # V8 under valgrind, on a busy machine
            send_to(name, port, args.instr_warmup)  # until V8 code, caches and pools reach their steady state
            subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
            t0 = time.time()
            time.sleep(args.instr_idle)
            idle, idle_s = dump_threads(proc, out, 1), time.time() - t0
            runs = {"": [], "#worker": [], "#net": [], "#worker-net": []}
            for batch in range(1, args.instr_batches + 1):
                subprocess.run(["callgrind_control", "-z", str(proc.pid)], check=True, capture_output=True)
                t0 = time.time()
                send_to(name, port, args.instr_requests)
                elapsed = time.time() - t0
                threads = dump_threads(proc, out, batch + 1)
                worker = max(threads, key=threads.get)
                background = {t: n / idle_s * elapsed for t, n in idle.items()}
                n = args.instr_requests
                runs[""].append(sum(threads.values()) / n)
                runs["#worker"].append(threads[worker] / n)
                runs["#net"].append((sum(threads.values()) - sum(background.values())) / n)
                runs["#worker-net"].append((threads[worker] - background.get(worker, 0)) / n)
                log(f"{name:15s} batch {batch}: {runs[''][-1] / 1000:.2f}k instructions/request "
                    f"({runs['#net'][-1] / 1000:.2f}k net), worker thread {runs['#worker'][-1] / 1000:.2f}k "
                    f"({runs['#worker-net'][-1] / 1000:.2f}k net), {elapsed:.0f} s; idle "
                    f"{sum(idle.values()) / idle_s / 1000:.0f}k/s, worker {idle.get(worker, 0) / idle_s / 1000:.0f}k/s")
            for suffix, values in runs.items():
                results[name + suffix] = values
        finally:
            stop(proc)
    return results


def stop(proc, grace=60):
    """SIGTERM, then SIGKILL: on a loaded machine Envoy under valgrind can take minutes to exit, and a timeout
    here used to abort the whole run with the measured figures unreported."""
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=grace)


def report_instructions(args, names, results):
    native = statistics.median(results["native"])
    print(f"\n{time.strftime('%Y-%m-%d %H:%M:%S')}  Envoy under callgrind, --concurrency 1; "
          f"{args.instr_batches} batches × {args.instr_requests} sequential requests after {args.instr_warmup} "
          f"warm-up; module {os.path.getsize(args.wasm)} bytes"
          + (f", SDK peer {os.path.getsize(args.sdk_wasm)} bytes" if any(CONFIGS[n][0] == "sdk" for n in names) else "")
          + f" {args.label}")
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
    def per_scenario(suffix, unit):
        med = {n: statistics.median(results[n + suffix]) for n in names}
        return report_scenarios(names, med, lambda n, hand: med[hand] / med[n], unit, lambda v: f"{v / 1000:.2f}")

    # The worker thread net of the background first: it repeats to ±0.1 %, where the raw total moves by ±1 %
    # with the batches' wall time.
    scenarios = {"worker_net": per_scenario("#worker-net", "k instructions/request, worker thread, net of idle"),
                 "all_threads": per_scenario("", "k instructions/request, all threads (as the tables above)")}
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"mode": "instructions", "rows": rows, "scenarios": scenarios, "runs": results}, f, indent=1)


# The columns of the scenario table: (label, variant); the floor is looked up in FLOOR_OF.
SCENARIO_COLUMNS = [("hand-written native", "hand"), ("native lowering", "lowered"),
                    ("hand-written, RE2", "hand-regex"), ("canary filter", "filter"), ("Lua", "lua"),
                    ("proxy-wasm floor", "floor")]


def report_scenarios(names, value, ratio, unit, fmt):
    """One row per scenario measured: each configuration's figure and its throughput ratio to the hand-written
    native routes of the same scenario (`ratio(name, hand)`); returns the rows for the JSON."""
    rows = []
    for scenario in SCENARIOS:
        hand = f"{scenario}.hand"
        if hand not in names:
            continue
        row = {"scenario": scenario}
        for label, variant in SCENARIO_COLUMNS:
            n = FLOOR_OF.get(scenario, "floor.write") if variant == "floor" else f"{scenario}.{variant}"
            if n in names:
                row[variant] = {"config": n, "value": value[n], "ratio": ratio(n, hand)}
        rows.append(row)
    if not rows:
        return rows
    columns = [(label, v) for label, v in SCENARIO_COLUMNS if any(v in r for r in rows)]
    print(f"\nPer scenario, behind the stand-in upstream: {unit} (× hand-written native)\n")
    print("| scenario | " + " | ".join(label for label, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for r in rows:
        cells = [f"{fmt(r[v]['value'])} ({r[v]['ratio']:.3f})" if v in r else "—" for _, v in columns]
        print(f"| {r['scenario']} | " + " | ".join(cells) + " |")
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envoy", required=True)
    p.add_argument("--canaryc", default=os.path.join(ROOT, "target/release/canaryc"))
    p.add_argument("--wasm", default=os.path.join(ROOT, "build/canary_filter.wasm"))
    p.add_argument("--sdk-wasm", default=os.path.join(ROOT, "build/sdk_filter.wasm"),
                   help="the proxy-wasm SDK peer (bench/sdk-filter/build.sh) for the sdk-* configurations")
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
    p.add_argument("--instr-idle", type=float, default=10.0,
                   help="seconds without requests, to measure Envoy's background instructions per second")
    args = p.parse_args()
    names = []
    for n in (n.strip() for n in args.configs.split(",") if n.strip()):
        names += [m for m in GROUPS.get(n, [n]) if m not in names]
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
    base = args.base_port + 2 * len(CONFIGS) + 2  # past every configuration's listener and admin port
    args.upstream_ports, args.upstream_admin = (base, base + 1), base + 2
    upstream = None
    if any(CONFIGS[n][0] == "scenario" for n in names):
        upstream = start_upstream(args, work)
        routing_agrees(args, names, work)
    if args.instructions:
        try:
            results = callgrind_instructions(args, names, work)
        finally:
            if upstream:
                upstream.terminate()
                upstream.wait(timeout=30)
            shutil.rmtree(work, ignore_errors=True)
        report_instructions(args, names, results)
        return
    procs, envoys = [upstream] if upstream else [], {}
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
                run_wrk(args, name, envoys[name][1], args.warmup)
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
    def paired(n, hand, metric, invert):  # median over rounds of this/hand (hand/this for a cost)
        pairs = zip(results[n], results[hand])
        return statistics.median((h[metric] / m[metric]) if invert else (m[metric] / h[metric]) for m, h in pairs)

    by_name = {r["config"]: r for r in rows}
    scenarios = report_scenarios(names, {n: by_name[n]["rps"] for n in names},
                                 lambda n, hand: paired(n, hand, "rps", False), "req/s", lambda v: f"{v:.0f}")
    report_scenarios(names, {n: by_name[n]["cpu_us_per_req"] for n in names},
                     lambda n, hand: paired(n, hand, "cpu_us_per_req", True), "Envoy CPU µs/request",
                     lambda v: f"{v:.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"meta": meta, "rows": rows, "scenarios": scenarios, "runs": results}, f, indent=1)


if __name__ == "__main__":
    main()
