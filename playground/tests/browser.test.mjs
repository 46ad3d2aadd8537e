// Browser tests of the playground, in real headless Chromium (Debian's), driven by playwright-core.
//
// The page is served by `canaryc playground` itself, so what is tested is the bundle embedded in the binary.
// Where the page shows something the CLI also prints (an error's LINE:COL, the deciding rule's line, a
// warning's line), the expected value is taken from `canaryc`, so the test checks that the browser build
// agrees with the native one rather than restating numbers.
//
// Run by scripts/test-playground.sh (which installs Chromium and playwright-core and builds everything):
//   node --test playground/tests/
// Environment: CANARYC (default target/debug/canaryc), CHROMIUM (default /usr/bin/chromium).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const canaryc = resolve(root, process.env.CANARYC ?? "target/debug/canaryc");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const artifacts = join(root, "build/artifacts");
// playwright-core is installed project-locally (build/node), not next to this file.
const { chromium } = createRequire(join(root, "build/node/package.json"))("playwright-core");

let server;
let baseUrl;
let context;
let page;
let userDataDir;
const pageErrors = [];

/** Runs canaryc on a policy given as text; returns { status, stdout, stderr }. */
function cli(args, policy) {
  const dir = mkdtempSync(join(tmpdir(), "canary-pg-"));
  const file = join(dir, "policy.canary");
  writeFileSync(file, policy);
  const r = spawnSync(canaryc, args.map((a) => (a === "FILE" ? file : a)), { encoding: "utf8" });
  rmSync(dir, { recursive: true, force: true });
  return r;
}

/** The first `FILE:LINE:COL: severity:` headline canaryc printed. */
function cliPosition(stderr, severity) {
  const m = new RegExp(`policy\\.canary:(\\d+):(\\d+): ${severity}:`).exec(stderr);
  assert.ok(m, `canaryc printed no ${severity} headline:\n${stderr}`);
  return `${m[1]}:${m[2]}`;
}

function startServer() {
  return new Promise((resolvePromise, reject) => {
    // Port 0: the OS picks a free port and the server prints the URL it really listens on.
    server = spawn(canaryc, ["playground", "--listen", "127.0.0.1:0"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    const timer = setTimeout(() => reject(new Error(`canaryc playground printed no URL in 20 s:\n${out}${err}`)), 20_000);
    server.stdout.on("data", (d) => {
      out += d;
      const m = /http:\/\/[\d.:]+\//.exec(out);
      if (m) {
        clearTimeout(timer);
        resolvePromise(m[0]);
      }
    });
    if (process.env.SERVER_PIDFILE) writeFileSync(process.env.SERVER_PIDFILE, String(server.pid));
    server.stderr.on("data", (d) => (err += d));
    server.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`canaryc playground exited (${code}):\n${out}${err}`));
    });
  });
}

function stopServer() {
  if (server && server.exitCode == null) server.kill("SIGTERM");
  // Stopped: the pid file (the test script's backstop) must not name a pid that could be reused.
  if (process.env.SERVER_PIDFILE) rmSync(process.env.SERVER_PIDFILE, { force: true });
}
process.on("exit", stopServer);

async function setPolicy(text) {
  await page.locator("#source").fill(text);
}

/** Waits until the page has compiled the current text (the debounce has fired) and returns the status. */
async function compiled() {
  await page.waitForFunction(() => {
    const s = document.getElementById("status");
    return s.dataset.state && window.__lastCompiled === document.getElementById("source").value;
  });
  return page.locator("#status").getAttribute("data-state");
}

async function decision() {
  await page.waitForTimeout(180); // the form's debounce (120 ms)
  return page.evaluate(() => ({
    subset: document.getElementById("decision-subset").textContent,
    rule: document.getElementById("decision-why").dataset.rule,
    highlighted: [...document.querySelectorAll("#backdrop .ln-decided")].map((e) => e.dataset.line),
  }));
}

async function simulate(n) {
  await page.locator("#sim-n").fill(String(n));
  await page.waitForTimeout(200); // let the form's debounced re-simulation (if any) land first
  const before = await page.locator("#chart").getAttribute("data-run");
  await page.locator("#simulate").click();
  await page.waitForFunction((prev) => document.getElementById("chart").dataset.run !== prev, before);
  return page.evaluate(() =>
    Object.fromEntries([...document.querySelectorAll("#chart .bar")].map((b) => [b.dataset.subset, Number(b.dataset.count)])),
  );
}

/** |count − n·p| within 5 standard deviations of the binomial(n, p). */
function assertBinomial(count, n, p, what) {
  const sigma = Math.sqrt(n * p * (1 - p));
  assert.ok(Math.abs(count - n * p) <= 5 * sigma, `${what}: ${count} of ${n}, expected ${n * p} ± ${(5 * sigma).toFixed(0)}`);
}

before(async () => {
  baseUrl = await startServer();
  userDataDir = mkdtempSync(join(tmpdir(), "canary-pg-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: chromiumPath,
    headless: true,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
      "--disable-sync", "--no-first-run", "--disable-quic",
    ],
    viewport: { width: 1440, height: 960 },
    deviceScaleFactor: 1,
  });
  page = context.pages()[0] ?? (await context.newPage());
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => m.type() === "error" && pageErrors.push(m.text()));
});

after(async () => {
  await context?.close();
  stopServer();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
});

test("canaryc playground serves the bundle with the right content types", async () => {
  const index = await fetch(baseUrl);
  assert.equal(index.status, 200);
  assert.match(index.headers.get("content-type"), /^text\/html/);
  const wasm = await fetch(new URL("canary_playground_bg.wasm", baseUrl));
  assert.equal(wasm.status, 200);
  assert.equal(wasm.headers.get("content-type"), "application/wasm");
  const size = (await wasm.arrayBuffer()).byteLength;
  // The budget of scripts/build-playground.sh (why it is 560 KB: the comment there).
  assert.ok(size <= 560 * 1024, `wasm bundle is ${size} bytes, over 560 KB`);
  assert.equal((await fetch(new URL("no-such-file", baseUrl))).status, 404);
});

test("the page loads the compiler and compiles the default scenario", async () => {
  await page.goto(baseUrl);
  await page.waitForSelector("body[data-ready=true]");
  assert.equal(await compiled(), "ok");
  assert.ok((await page.locator("#scenario option").count()) >= 7, "S1–S6 are in the menu");
  assert.match(await page.locator("#json").textContent(), /"services"/);
});

const broken = `# a typo: => instead of ->
service frontend {
  android: 50% v2
  cookie user=tester => v2
  default v1
}
`;

test("a policy with an error shows the error at canaryc's LINE:COL, as the user types", async () => {
  await page.locator("#source").click();
  await page.keyboard.press("Control+A");
  await page.keyboard.press("Delete");
  await page.keyboard.type(broken, { delay: 2 });
  assert.equal(await compiled(), "error");
  const r = cli(["compile", "FILE"], broken);
  assert.equal(r.status, 1);
  assert.equal(r.stdout, "");
  const expected = cliPosition(r.stderr, "error");
  assert.equal(expected.split(":")[0], "4", "the typo is on line 4");
  const shown = await page.locator("#diagnostics .diag-error .loc").first().textContent();
  assert.equal(shown, expected);
  const [line] = expected.split(":");
  assert.equal(await page.locator(`#gutter > div:nth-child(${line})`).getAttribute("class"), "g-error");
  assert.ok(await page.locator(`#backdrop [data-line="${line}"] .err`).count(), "the error is underlined");
  assert.match(await page.locator("#json").textContent(), /Fix the errors/);
});

test("fixing the error compiles the policy", async () => {
  const at = broken.lastIndexOf("=>");
  await page.evaluate(([from, to]) => document.getElementById("source").setSelectionRange(from, to), [at, at + 2]);
  await page.keyboard.type("->");
  const status = await compiled();
  assert.equal(status, "ok", `still broken:\n${await page.locator("#source").inputValue()}\n${await page.locator("#diagnostics").textContent()}`);
  assert.equal(await page.locator("#diagnostics .diag-error").count(), 0);
  const json = JSON.parse(await page.locator("#json").textContent());
  const native = JSON.parse(cli(["compile", "FILE"], await page.locator("#source").inputValue()).stdout);
  assert.deepEqual(json, native, "the page's compiled JSON is canaryc's");
});

test("check's warnings are shown at canaryc's line", async () => {
  const policy = `service forecast {\n  50% v2\n  header user-agent ~ "Chrome" -> v2\n  default v1\n}\n`;
  await setPolicy(policy);
  assert.equal(await compiled(), "warning");
  const r = cli(["check", "FILE"], policy);
  assert.equal(r.status, 0);
  const expected = cliPosition(r.stderr, "warning");
  const shown = await page.locator("#diagnostics .diag-warning .loc").first().textContent();
  assert.equal(shown.split(":")[0], expected.split(":")[0]);
});

test("S4: an Android request to frontend gets v1 or v2 from line 3; macOS always gets v1", async () => {
  await page.selectOption("#scenario", "s4-android-split");
  assert.equal(await compiled(), "ok");
  await page.selectOption("#service", "frontend");
  await page.selectOption("#ua-preset", "android");
  const s4 = readFileSync(join(root, "examples/s4-android-split.canary"), "utf8");
  const ua = await page.evaluate(() => document.getElementById("headers").value.split("\n")[0].split(": ")[1]);
  const native = JSON.parse(cli(["eval", "FILE", "--service", "frontend", "--header", `user-agent: ${ua}`, "--json"], s4).stdout);
  const seen = new Set();
  for (let i = 0; i < 40 && seen.size < 2; i++) {
    await page.locator("#redraw").click();
    const d = await decision();
    assert.ok(["v1", "v2"].includes(d.subset), `Android got ${d.subset}`);
    assert.equal(d.rule, String(native.rule), "decided by the rule canaryc names");
    assert.deepEqual(d.highlighted, [String(native.rule)], "the deciding rule is highlighted in the editor");
    seen.add(d.subset);
  }
  assert.deepEqual([...seen].sort(), ["v1", "v2"], "a 50% split gives both subsets over 40 draws");

  await page.selectOption("#ua-preset", "mac-safari");
  for (let i = 0; i < 10; i++) {
    await page.locator("#redraw").click();
    const d = await decision();
    assert.equal(d.subset, "v1", "macOS always gets v1");
    assert.equal(d.rule, "", "the default decided");
    assert.deepEqual(d.highlighted, []);
  }
});

test("10,000 Android requests split 50/50 within 5 sigma", async () => {
  await page.selectOption("#ua-preset", "android");
  const counts = await simulate(10_000);
  assert.deepEqual(Object.keys(counts).sort(), ["v1", "v2"]);
  assert.equal(counts.v1 + counts.v2, 10_000);
  assertBinomial(counts.v2, 10_000, 0.5, "v2");
  const text = await page.locator('#chart .bar[data-subset="v2"] .count').textContent();
  assert.equal(Number(text.replace(/,/g, "")), counts.v2, "the bar shows its count as text");
});

test("S6: 10,000 tcp-echo connections split 80/20 within 5 sigma", async () => {
  await page.selectOption("#scenario", "s6-tcp-split");
  assert.equal(await compiled(), "ok");
  assert.equal(await page.locator("#service").inputValue(), "tcp-echo");
  const counts = await simulate(10_000);
  assert.equal(counts.v1 + counts.v2, 10_000);
  assertBinomial(counts.v2, 10_000, 0.2, "v2");
});

test("the shared URL restores the policy after a reload and in a new tab", async () => {
  await page.selectOption("#scenario", "s5-tester-chain");
  assert.equal(await compiled(), "ok");
  const edited = `${await page.locator("#source").inputValue()}# shared → with a note\n`;
  await setPolicy(edited);
  assert.equal(await compiled(), "ok");
  await page.waitForTimeout(300); // the URL follows the debounced compile
  const url = page.url();
  assert.match(url, /#policy=/);

  await page.reload();
  await page.waitForSelector("body[data-ready=true]");
  assert.equal(await page.locator("#source").inputValue(), edited);
  assert.equal(await compiled(), "ok");

  const tab = await context.newPage();
  await tab.goto(url);
  await tab.waitForSelector("body[data-ready=true]");
  assert.equal(await tab.locator("#source").inputValue(), edited);
  assert.equal(await tab.locator("#service").inputValue(), "frontend");
  await tab.close();
});

test("the explanation is canaryc eval --explain's, for the very decision shown", async () => {
  const policy = `service web {\n  cookie user=tester -> v2\n  android: 10% v2 by cookie uid\n  default v1\n}\n`;
  await setPolicy(policy);
  assert.equal(await compiled(), "ok");
  await page.selectOption("#service", "web");
  await page.selectOption("#ua-preset", "android");
  await page.locator("#cookies").fill("user=alice\nuid=abc123");
  const d = await decision();
  const ua = await page.evaluate(() => document.getElementById("headers").value.split("\n")[0].split(": ")[1]);
  const args = ["eval", "FILE", "--service", "web", "--cookie", "user=alice", "--cookie", "uid=abc123", "--header", `user-agent: ${ua}`];
  const r = cli([...args, "--explain"], policy);
  assert.equal(r.status, 0, r.stderr);
  const shown = await page.locator("#explain").textContent();
  assert.equal(shown, r.stdout, "the page shows exactly what canaryc prints");
  assert.match(shown, /✗ cookie user=tester: cookie user is "alice"/);
  assert.match(shown, /✓ android: user-agent is "Mozilla/);
  assert.match(shown, /split: cookie uid is "abc123": sticky bucket \d+ of 10,000 → v[12]/);
  assert.equal(d.subset, cli(args, policy).stdout.trim());
  assert.equal(await page.locator("#explain").getAttribute("data-subset"), d.subset);

  // A per-request draw: every redraw explains the bucket of the decision it shows.
  await page.selectOption("#scenario", "s4-android-split");
  assert.equal(await compiled(), "ok");
  await page.selectOption("#ua-preset", "android");
  const seen = new Set();
  for (let i = 0; i < 30 && seen.size < 2; i++) {
    await page.locator("#redraw").click();
    const now = await decision();
    assert.equal(await page.locator("#explain").getAttribute("data-subset"), now.subset);
    assert.match(await page.locator("#explain").textContent(), new RegExp(`per-request draw: bucket \\d+ of 10,000 → ${now.subset}`));
    seen.add(now.subset);
  }
  assert.deepEqual([...seen].sort(), ["v1", "v2"]);
});

test("simulate means N users, a fixed key one user: the page, canaryc and its note agree", async () => {
  const policy = `service web {\n  10% v2 by cookie uid\n  default v1\n}\n`;
  await setPolicy(policy);
  assert.equal(await compiled(), "ok");
  await page.selectOption("#ua-preset", "");
  await page.locator("#cookies").fill("uid=abc123");
  assert.equal(await page.locator("#sim-fixed").isChecked(), false);

  // By default the request's uid is replaced by one generated value per request: 10% of users get v2.
  const users = await simulate(10_000);
  assertBinomial(users.v2 ?? 0, 10_000, 0.1, "v2 of 10,000 users");
  const r = cli(["simulate", "FILE", "-n", "10000", "--cookie", "uid=abc123"], policy);
  assert.equal(r.status, 0, r.stderr);
  assertBinomial(JSON.parse(r.stdout).v2 ?? 0, 10_000, 0.1, "canaryc's v2");
  const note = await page.locator("#sim-note").getAttribute("data-note");
  assert.equal(note, r.stderr.trim(), "the page's note is canaryc's");
  assert.match(note, /from 10,000 users: cookie uid gets a generated value per request \(the request's cookie uid=abc123 is replaced/);

  // With a fixed key the 10,000 requests are one user: all in the subset canaryc eval gives that user.
  await page.locator("#sim-fixed").check();
  const one = await simulate(10_000);
  const subset = cli(["eval", "FILE", "--cookie", "uid=abc123"], policy).stdout.trim();
  assert.deepEqual(one, { [subset]: 10_000 });
  const fixed = cli(["simulate", "FILE", "-n", "10000", "--cookie", "uid=abc123", "--fixed-key"], policy);
  assert.deepEqual(JSON.parse(fixed.stdout), one);
  assert.equal(await page.locator("#sim-note").getAttribute("data-note"), fixed.stderr.trim());
  await page.locator("#sim-fixed").uncheck();
  await page.locator("#cookies").fill("");
});

test("screenshot of S4 with an Android request and a 10,000-request split", async () => {
  await page.selectOption("#scenario", "s4-android-split");
  assert.equal(await compiled(), "ok");
  await page.selectOption("#ua-preset", "android");
  for (let i = 0; i < 10; i++) {
    await page.locator("#redraw").click();
    if ((await decision()).subset === "v2") break; // show the canary winning, with its rule highlighted
  }
  await simulate(10_000);
  await page.evaluate(() => document.getElementById("json-details").setAttribute("open", ""));
  await page.locator("#source").evaluate((e) => e.blur());
  mkdirSync(artifacts, { recursive: true });
  const file = join(artifacts, "playground.png");
  await page.screenshot({ path: file, fullPage: false });
  assert.ok(readFileSync(file).length > 10_000);
  assert.deepEqual(pageErrors, [], "no errors in the page's console");
});
