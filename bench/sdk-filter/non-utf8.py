#!/usr/bin/env python3
"""What a user agent that is not UTF-8 does to an SDK filter in Envoy: the SDK's `get_http_request_header`
(a `String`) panics on it (`String::from_utf8(..).unwrap()` in proxy-wasm's hostcalls.rs), a panic is a wasm
trap, and a trap kills the VM. Envoy accepts obs-text (bytes 0x80–0xFF) in header values, so any client can
send one.

For each module given (the S3 peer built normally, reading the header with `_bytes`, and built with
`--features utf8-header`), one Envoy with the bench's bootstrap (bench/envoy_bench.py, configuration
`sdk-s3`), then on one connection after another: a normal request, the same with `\\xff` in the user agent,
and normal requests again. Prints each response's status and body and whether the VM survived. Run through
bench/sdk-filter/non-utf8.sh, which builds both modules; BENCHMARKS.md has the result.
"""

import argparse
import http.client
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import envoy_bench  # noqa: E402  (bench/envoy_bench.py: the same bootstrap and Envoy start-up)

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
NON_UTF8 = UA.encode().replace(b"Linux", b"Linux \xff")  # still contains "Chrome": S3 would say v2
AFTER = 20  # normal requests after the bad one: are they still served by the filter?


def request(port, ua):
    """One request on a fresh connection (a reset answer must not hide the next one); (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/?city=Paris", headers={"User-Agent": ua, envoy_bench.HEADER: "v2"})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(errors="replace")
    except (OSError, http.client.HTTPException) as e:
        return None, f"{type(e).__name__}: {e}"
    finally:
        conn.close()


def run(envoy, label, wasm, port, work):
    args = argparse.Namespace(envoy=envoy, base_port=port, variants={}, wasm=wasm, sdk_wasm=wasm)
    proc, port, admin = envoy_bench.start_envoy(args, "sdk-s3", 0, work)
    try:
        if not envoy_bench.wait_ready(admin, proc):
            raise SystemExit(f"{label}: Envoy did not become ready (log in {work})")
        before = request(port, UA)
        bad = request(port, NON_UTF8)
        after = [request(port, UA) for _ in range(AFTER)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    with open(os.path.join(work, "sdk-s3.log")) as f:
        log = [ln.strip() for ln in f if any(w in ln.lower() for w in ("panic", "wasm", "trap", "unreachable"))]
    shutil.move(os.path.join(work, "sdk-s3.log"), os.path.join(work, f"{label}.log"))
    served = sum(1 for s, b in after if s == 200 and b == "v2")
    print(f"\n{label} ({os.path.basename(wasm)}):")
    print(f"  normal UA before:   {before}")
    print(f"  UA with \\xff:       {bad}")
    print(f"  normal UA after ×{AFTER}: {served} answered 200 v2; others: "
          f"{sorted(set(r for r in after if r != (200, 'v2')))}")
    print("  Envoy log (panic/wasm lines): " + ("\n    " + "\n    ".join(log[:6]) if log else "none"))
    return before, bad, served


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--envoy", required=True)
    p.add_argument("--bytes-wasm", required=True, help="the peer as benchmarked (`_bytes` read)")
    p.add_argument("--string-wasm", required=True, help="the peer built with --features utf8-header")
    p.add_argument("--base-port", type=int, default=19150)
    a = p.parse_args()
    work = tempfile.mkdtemp(prefix="canary-non-utf8-")
    try:
        run(a.envoy, "get_http_request_header_bytes", a.bytes_wasm, a.base_port, work)
        run(a.envoy, "get_http_request_header", a.string_wasm, a.base_port + 2, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
