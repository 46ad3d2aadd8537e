#!/usr/bin/env python3
"""Derives compiler/tests/fixtures/ua-corpus/ from uap-core's test corpus (test_os.yaml, test_ua.yaml).

The tests must run in a clone that has only the repository, so they carry a compact fixture of facts: user-agent
strings with the family uap-core assigns them (its `major`/`minor`/`patch` fields are left out). The selection
never looks at what canary's families answer, so the balanced accuracy measured on it is not tuned to pass:
  * test_os.yaml: every case (483 short strings; the `mobile` test needs all the desktops);
  * test_ua.yaml: every case whose family is a positive of a language family (Chrome…, Firefox…, Edge…, Safari,
    Mobile Safari: 44 cases), and every 4th of the others, in file order. Balanced accuracy is the mean of the
    true-positive and true-negative rates, so thinning the negatives does not bias it.
Values are copied line for line, quoting included, so a string is byte for byte uap-core's.

Usage: scripts/derive-ua-fixture.py [SOURCE_DIR]   (default ../shared/ua-corpus next to the workspace)
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCE = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "ua-corpus"
OUT = ROOT / "compiler" / "tests" / "fixtures" / "ua-corpus"
NEGATIVE_STRIDE = 4
CASE = re.compile(r"^  - user_agent_string: (.*)$")
FAMILY = re.compile(r"^    family: (.*)$")


def cases(path):
    """(user_agent_string line value, family line value) in file order, exactly as written."""
    out, agent = [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if m := CASE.match(line):
            agent = m.group(1)
        elif (m := FAMILY.match(line)) and agent is not None:
            out.append((agent, m.group(1)))
            agent = None
    return out


def browser_positive(family):
    f = family.strip("'\"")
    return (f in ("Chrome", "Chrome Mobile", "Chrome Mobile iOS", "Chrome Mobile WebView", "Safari", "Mobile Safari")
            or f.startswith("Firefox") or f.startswith("Edge"))


def write(name, selected, total, rule):
    lines = [
        f"# Derived by scripts/derive-ua-fixture.py from ua-parser/uap-core's {name} (Apache License 2.0,",
        "# (c) 2009 Google Inc. and contributors): user-agent strings with the family uap-core assigns them.",
        f"# {len(selected)} of {total} cases: {rule}. Do not edit by hand; rerun the script.",
        "test_cases:",
    ]
    for agent, family in selected:
        lines += [f"  - user_agent_string: {agent}", f"    family: {family}"]
    (OUT / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{OUT / name}: {len(selected)} of {total} cases")


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    os_cases = cases(SOURCE / "test_os.yaml")
    write("test_os.yaml", os_cases, len(os_cases), "all of them")
    ua_cases = cases(SOURCE / "test_ua.yaml")
    negatives = [c for c in ua_cases if not browser_positive(c[1])]
    keep = {id(c) for c in negatives[::NEGATIVE_STRIDE]}
    selected = [c for c in ua_cases if browser_positive(c[1]) or id(c) in keep]
    write("test_ua.yaml", selected, len(ua_cases),
          f"every positive of chrome/firefox/edge/safari, every {NEGATIVE_STRIDE}th other case")


if __name__ == "__main__":
    main()
