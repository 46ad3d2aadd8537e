// canary playground: the page around the wasm build of canaryc's compiler and evaluator.
//
// Every decision (errors, the compiled JSON, warnings, which subset a request gets, the simulated split)
// comes from the wasm module, i.e. the same Rust code as `canaryc` and the Envoy filter. This file only
// draws: the editor with its highlighting, the form, the chart, and the policy kept in the URL.
import init, * as canary from "./canary_playground.js";
import { SCENARIOS } from "./scenarios.js";
// KEYWORDS, ATTRIBUTES, FAMILIES: generated from the VS Code grammar (editors/vscode/syntaxes/) at build time.
import { KEYWORDS, ATTRIBUTES, FAMILIES } from "./grammar.js";

const $ = (id) => document.getElementById(id);
const el = {
  source: $("source"), backdrop: $("backdrop"), gutter: $("gutter"), diagnostics: $("diagnostics"),
  status: $("status"), json: $("json"), jsonSize: $("json-size"), copyJson: $("copy-json"),
  scenario: $("scenario"), share: $("share"), shareLabel: $("share-label"),
  service: $("service"), method: $("method"), path: $("path"), host: $("host"), uaPreset: $("ua-preset"),
  headers: $("headers"), cookies: $("cookies"), query: $("query"), sourceLabels: $("source-labels"),
  request: $("request"), requestKind: $("request-kind"), decisionSubset: $("decision-subset"), decisionWhy: $("decision-why"),
  decisionRule: $("decision-rule"), redraw: $("redraw"), simForm: $("sim-form"), simN: $("sim-n"),
  chart: $("chart"), simNote: $("sim-note"), bundleInfo: $("bundle-info"), explain: $("explain"), simFixed: $("sim-fixed"),
};

// Real user agents, so the family conditions (`android`, `chrome`, …) can be tried with one click.
const USER_AGENTS = [
  ["android", "Android phone · Chrome", "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"],
  ["iphone", "iPhone · Safari", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"],
  ["mac-chrome", "macOS · Chrome", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"],
  ["mac-safari", "macOS · Safari", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"],
  ["win-firefox", "Windows · Firefox", "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"],
  ["win-edge", "Windows · Edge", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80"],
  ["curl", "curl", "curl/8.5.0"],
];

// A request that shows each scenario off when it is loaded from the menu.
const SCENARIO_REQUESTS = {
  "s2-forecast-50": { service: "forecast" },
  "s2-forecast-100": { service: "forecast" },
  "s3-chrome": { service: "forecast", ua: "mac-chrome" },
  "s4-android-split": { service: "frontend", ua: "android" },
  "s5-tester-chain": { service: "frontend", ua: "mac-safari", cookies: "user=tester" },
  "s6-tcp-split": { service: "tcp-echo" },
  "weather": { service: "frontend", ua: "android" },
  "oneliner": { ua: "android" },
};
const DEFAULT_SCENARIO = "s4-android-split";

const state = {
  result: null, // the last compile report from wasm
  decidedLine: null,
  ready: false,
};

// ---------------------------------------------------------------------------------------------------------
// Small utilities

function debounce(fn, ms) {
  let timer = 0;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

const escapeHtml = (s) => s.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c]);

const seed = () => (Math.random() * 2 ** 32) >>> 0;

/** Subset colours: v1 green and v2 blue as in the weather demo's buttons, then a fixed palette. */
const PALETTE = ["#239160", "#2f64d6", "#d9480f", "#7c3aed", "#0e8a9a", "#c2255c", "#8a6d00", "#5c6b80"];
function subsetColor(name) {
  if (name == null || name === "none") return "#a3acbc";
  const m = /^v(\d+)$/.exec(name);
  if (m) return PALETTE[(Number(m[1]) + PALETTE.length - 1) % PALETTE.length];
  let h = 0;
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0;
  return PALETTE[h % PALETTE.length];
}

// The policy lives in the URL hash as base64url(UTF-8), so a link reopens exactly this policy.
function encodePolicy(text) {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
function decodePolicy(b64) {
  try {
    const bin = atob(b64.replace(/-/g, "+").replace(/_/g, "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
  } catch {
    return null;
  }
}
function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  const policy = params.get("policy");
  return { policy: policy == null ? null : decodePolicy(policy), service: params.get("service") };
}
function writeHash() {
  const params = new URLSearchParams();
  params.set("policy", encodePolicy(el.source.value));
  if (el.service.value) params.set("service", el.service.value);
  history.replaceState(null, "", `#${params.toString()}`);
}

// ---------------------------------------------------------------------------------------------------------
// Editor: syntax colouring, diagnostics underlines and the deciding rule, drawn behind a transparent textarea.

/** Splits one line into coloured tokens. Display only: the compiler's diagnostics are the authority. */
function tokenize(line) {
  const tokens = [];
  let i = 0;
  let prev = "";
  const push = (from, to, cls, text) => {
    tokens.push({ from, to, cls });
    prev = text;
  };
  while (i < line.length) {
    const rest = line.slice(i);
    let m;
    if (line[i] === "#") {
      tokens.push({ from: i, to: line.length, cls: "t-comment" });
      break;
    } else if (line[i] === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === "\\" ? 2 : 1;
      push(i, Math.min(j + 1, line.length), "t-str", "str");
      i = j + 1;
    } else if ((m = /^\d+(?:\.\d+)?%/.exec(rest))) {
      push(i, i + m[0].length, "t-pct", "%");
      i += m[0].length;
    } else if ((m = /^[A-Za-z_][A-Za-z0-9_.]*(?:-(?!>)[A-Za-z0-9_.]+)*/.exec(rest))) {
      const word = m[0];
      let cls = "";
      let style;
      if (prev === "->" || prev === "default" || prev === "%") {
        cls = "t-subset";
        style = `color:${subsetColor(word)}`;
      } else if (prev === "service") cls = "t-svc";
      else if (KEYWORDS.has(word)) cls = "t-kw";
      else if (ATTRIBUTES.has(word)) cls = "t-attr";
      else if (FAMILIES.has(word)) cls = "t-family";
      tokens.push({ from: i, to: i + word.length, cls, style });
      prev = cls === "t-subset" ? "subset" : word;
      i += word.length;
    } else if ((m = /^(->|!=|[~=:;,{}()[\]])/.exec(rest))) {
      push(i, i + m[0].length, "t-op", m[0]);
      i += m[0].length;
    } else {
      i += 1;
    }
  }
  return tokens;
}

/** Per line: the character ranges to underline, from diagnostics' 1-based (line, col)–(end_line, end_col). */
function underlines(diags, lines) {
  const byLine = new Map();
  for (const d of diags) {
    const kind = d.severity === "error" ? "err" : "warn";
    const endLine = Math.max(d.end_line, d.line);
    for (let ln = d.line; ln <= endLine && ln <= lines.length; ln++) {
      const text = lines[ln - 1];
      const from = ln === d.line ? d.col - 1 : 0;
      let to = ln === endLine ? d.end_col - 1 : text.length;
      if (ln === d.line && to <= from) to = from + 1; // an empty span still gets a visible mark
      const list = byLine.get(ln) ?? [];
      list.push({ from, to, kind });
      byLine.set(ln, list);
    }
  }
  return byLine;
}

function renderEditor() {
  const text = el.source.value;
  const lines = text.split("\n");
  const diags = state.result ? [...state.result.errors, ...state.result.warnings] : [];
  const marks = underlines(diags, lines);
  const errorLines = new Set(diags.filter((d) => d.severity === "error").map((d) => d.line));
  const warnLines = new Set(diags.filter((d) => d.severity !== "error").map((d) => d.line));

  let gutter = "";
  let code = "";
  lines.forEach((line, idx) => {
    const n = idx + 1;
    const decided = state.decidedLine === n;
    const gcls = errorLines.has(n) ? "g-error" : decided ? "g-decided" : warnLines.has(n) ? "g-warn" : "";
    gutter += `<div class="${gcls}">${n}</div>`;
    const lcls = decided ? "ln ln-decided" : errorLines.has(n) ? "ln ln-error" : "ln";
    code += `<div class="${lcls}" data-line="${n}">${highlightLine(line, marks.get(n) ?? [])}</div>`;
  });
  el.gutter.innerHTML = gutter;
  el.backdrop.innerHTML = code;
  syncScroll();
}

/** One line's HTML: runs of characters with the same token class and underline. */
function highlightLine(line, marks) {
  const cls = new Array(line.length).fill("");
  const styles = new Array(line.length).fill("");
  for (const t of tokenize(line)) {
    for (let i = t.from; i < t.to; i++) {
      cls[i] = t.cls;
      styles[i] = t.style ?? "";
    }
  }
  const under = new Array(line.length).fill("");
  let eol = "";
  for (const m of marks) {
    if (m.from >= line.length) eol = m.kind;
    for (let i = Math.max(0, m.from); i < Math.min(m.to, line.length); i++) if (under[i] !== "err") under[i] = m.kind;
  }
  let html = "";
  let i = 0;
  while (i < line.length) {
    let j = i + 1;
    while (j < line.length && cls[j] === cls[i] && styles[j] === styles[i] && under[j] === under[i]) j++;
    const classes = [cls[i], under[i]].filter(Boolean).join(" ");
    const piece = escapeHtml(line.slice(i, j));
    html += classes || styles[i] ? `<span class="${classes}"${styles[i] ? ` style="${styles[i]}"` : ""}>${piece}</span>` : piece;
    i = j;
  }
  if (eol) html += `<span class="${eol === "err" ? "err-eol" : "warn"}"></span>`;
  return html;
}

function syncScroll() {
  const { scrollTop, scrollLeft } = el.source;
  el.backdrop.parentElement.style.transform = `translate(${-scrollLeft}px, ${-scrollTop}px)`;
  el.gutter.style.transform = `translateY(${-scrollTop}px)`;
}

/** Puts the caret at a 1-based line and column and scrolls it into view. */
function goTo(line, col) {
  const lines = el.source.value.split("\n");
  let offset = 0;
  for (let i = 0; i < line - 1 && i < lines.length; i++) offset += lines[i].length + 1;
  offset += Math.max(0, col - 1);
  el.source.focus();
  el.source.setSelectionRange(offset, offset);
  const lineHeight = parseFloat(getComputedStyle(el.source).lineHeight) || 20;
  const top = (line - 1) * lineHeight;
  if (top < el.source.scrollTop || top > el.source.scrollTop + el.source.clientHeight - 2 * lineHeight) {
    el.source.scrollTop = Math.max(0, top - el.source.clientHeight / 3);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Compile, diagnostics, compiled JSON

function compileNow() {
  if (!state.ready) return;
  state.result = JSON.parse(canary.compile(el.source.value));
  window.__lastCompiled = el.source.value; // lets tests (and curious users) see what the report is for
  const { errors, warnings, ok } = state.result;
  if (!ok) state.decidedLine = null;

  const nErr = errors.length;
  const nWarn = warnings.length;
  el.status.className = `pill ${nErr ? "pill-error" : nWarn ? "pill-warn" : "pill-ok"}`;
  el.status.dataset.state = nErr ? "error" : nWarn ? "warning" : "ok";
  const plural = (n, w) => `${n} ${w}${n === 1 ? "" : "s"}`;
  el.status.textContent = nErr
    ? plural(nErr, "error")
    : nWarn
      ? `compiled · ${plural(nWarn, "warning")}`
      : `compiled · ${state.result.services.length ? plural(state.result.services.length, "service") : "top-level rules"}`;

  renderDiagnostics();
  renderJson();
  fillServices();
  renderEditor();
  requestChanged();
}

function renderDiagnostics() {
  const { errors, warnings } = state.result;
  el.diagnostics.innerHTML = "";
  for (const d of [...errors, ...warnings]) {
    const li = document.createElement("li");
    li.className = `diag diag-${d.severity}`;
    li.dataset.line = d.line;
    li.dataset.col = d.col;
    let extra = "";
    if (d.hint) extra += `<div class="extra">hint: ${inlineCode(d.hint)}</div>`;
    for (const note of d.notes ?? []) extra += `<div class="extra">${inlineCode(note)}</div>`;
    li.innerHTML =
      `<span class="sev">${d.severity}</span><span class="loc">${d.line}:${d.col}</span>` +
      `<span class="msg">${inlineCode(d.message)}</span>${extra}`;
    li.title = "Go to this position";
    li.addEventListener("click", () => goTo(d.line, d.col));
    el.diagnostics.append(li);
  }
}

/** Backquoted words in messages (`->`, `default v1`) shown as code. */
const inlineCode = (s) => escapeHtml(s).replace(/`([^`]+)`/g, "<code>$1</code>");

function renderJson() {
  const json = state.result.config;
  if (json == null) {
    el.json.innerHTML = `<span class="muted">Fix the errors above to see the compiled configuration.</span>`;
    el.jsonSize.textContent = "";
    return;
  }
  el.jsonSize.textContent = `${new TextEncoder().encode(json).length.toLocaleString("en-US")} bytes`;
  el.json.innerHTML = escapeHtml(json).replace(
    /(&quot;(?:[^&\\]|\\.|&(?!quot;))*&quot;)(\s*:)?|\b(-?\d+(?:\.\d+)?)\b|\b(true|false|null)\b/g,
    (m, str, colon, num, lit) => {
      if (str) return colon ? `<span class="k">${str}</span>${colon}` : `<span class="s">${str}</span>`;
      if (num) return `<span class="n">${num}</span>`;
      return `<span class="b">${lit}</span>`;
    },
  );
}

// ---------------------------------------------------------------------------------------------------------
// Request form, decision, simulation

function fillServices() {
  const { services, ok } = state.result;
  el.redraw.disabled = !ok;
  if (!ok) {
    // Keep the last good list while the policy is being edited (a policy opened broken has none yet).
    if (!el.service.options.length) el.service.add(new Option("—", ""));
    return;
  }
  const wanted = el.service.value || el.service.dataset.wanted || "";
  const options = services.map((s) => [s, s]);
  options.push(["", services.length ? "another service (top-level rules only)" : "any service"]);
  el.service.innerHTML = options.map(([v, label]) => `<option value="${escapeHtml(v)}">${escapeHtml(label)}</option>`).join("");
  el.service.value = options.some(([v]) => v === wanted) ? wanted : options[0][0];
  delete el.service.dataset.wanted;
  serviceChanged();
}

/** A TCP service decides per connection from source labels alone: the HTTP fields are dimmed, not hidden. */
function serviceChanged() {
  const tcp = (state.result?.tcp ?? []).includes(el.service.value);
  el.host.placeholder = el.service.value || "localhost";
  el.request.classList.toggle("tcp", tcp);
  el.requestKind.textContent = tcp ? "a TCP connection: only source labels count" : "which version does it get?";
}

/** `name: value` / `name=value` lines; the separator is the first `sep`. */
function pairs(textarea, sep) {
  const out = [];
  let bad = false;
  for (const raw of textarea.value.split("\n")) {
    const line = raw.trim();
    if (!line || line.startsWith("#")) continue;
    const at = line.indexOf(sep);
    if (at <= 0) {
      bad = true;
      continue;
    }
    out.push([line.slice(0, at).trim(), line.slice(at + 1).trim()]);
  }
  textarea.classList.toggle("invalid", bad);
  textarea.title = bad ? `each line: name${sep === ":" ? ": " : "="}value` : "";
  return out;
}

/** Calls `fn` with the form's request as the bindings take it (see `Request` in playground/src/lib.rs). */
function withRequest(fn) {
  const req = new canary.Request(el.service.value);
  try {
    req.method(el.method.value);
    req.path(el.path.value || "/");
    if (el.host.value.trim()) req.host(el.host.value.trim());
    for (const [k, v] of pairs(el.headers, ":")) req.header(k, v);
    for (const [k, v] of pairs(el.cookies, "=")) req.cookie(k, v);
    for (const [k, v] of pairs(el.query, "=")) req.query(k, v);
    for (const [k, v] of pairs(el.sourceLabels, "=")) req.source(k, v);
    return fn(req);
  } finally {
    req.free();
  }
}

function evaluateNow() {
  if (!state.ready || !state.result?.ok) {
    showDecision(null);
    showExplanation(null);
    return;
  }
  // One seed for both: a non-sticky split draws the same bucket, so the explanation is of this decision.
  const s = seed();
  const d = JSON.parse(withRequest((req) => canary.evaluate(el.source.value, req, s)));
  showDecision(d);
  showExplanation(JSON.parse(withRequest((req) => canary.explain(el.source.value, req, s))));
}

/** `canaryc eval --explain`'s text, from the same Rust function, with its lines coloured by kind. */
function showExplanation(e) {
  if (!e || e.error) {
    el.explain.textContent = e?.error ?? "";
    return;
  }
  const kind = (line) =>
    /^line \d+:/.test(line) ? "x-rule" : /^\s+✓/.test(line) ? "x-yes" : /^\s+✗/.test(line) ? "x-no"
      : /^\s+split:/.test(line) ? "x-split" : /^decision:/.test(line) ? "x-decision" : "";
  el.explain.innerHTML = e.text
    .split("\n")
    .map((line) => `<span class="${kind(line)}">${escapeHtml(line)}</span>`)
    .join("\n");
  el.explain.dataset.subset = e.subset ?? "none";
}

function showDecision(d) {
  const chip = el.decisionSubset;
  if (!d || d.error) {
    chip.textContent = "—";
    chip.className = "decision-subset none";
    chip.style.background = "";
    el.decisionWhy.textContent = d?.error ?? "Fix the policy's errors to try a request.";
    el.decisionRule.textContent = "";
    state.decidedLine = null;
    renderEditor();
    return;
  }
  chip.textContent = d.subset ?? "none";
  chip.className = `decision-subset${d.subset == null ? " none" : ""}`;
  chip.style.background = d.subset == null ? "" : subsetColor(d.subset);
  chip.dataset.subset = d.subset ?? "none";
  state.decidedLine = d.rule;
  if (d.rule != null) {
    const text = el.source.value.split("\n")[d.rule - 1] ?? "";
    el.decisionWhy.textContent = `Decided by the rule on line ${d.rule}`;
    el.decisionRule.textContent = text.trim();
  } else if (d.subset != null) {
    el.decisionWhy.textContent = "No rule matched: the default applies";
    el.decisionRule.textContent = `default ${d.subset}`;
  } else {
    el.decisionWhy.textContent = "No decision: the filter removes any subset header, so Envoy's default route applies";
    el.decisionRule.textContent = "";
  }
  el.decisionWhy.dataset.rule = d.rule ?? "";
  renderEditor();
}

function simulateNow() {
  if (!state.ready || !state.result?.ok) {
    el.chart.innerHTML = `<div class="chart-empty">Fix the policy's errors to simulate traffic.</div>`;
    el.simNote.textContent = "";
    return;
  }
  const n = Math.max(1, Math.min(1_000_000, Math.floor(Number(el.simN.value) || 10_000)));
  const started = performance.now();
  const r = JSON.parse(withRequest((req) => canary.simulate(el.source.value, req, n, seed(), el.simFixed.checked)));
  const ms = performance.now() - started;
  if (r.error) {
    el.chart.innerHTML = `<div class="chart-empty">${escapeHtml(r.error)}</div>`;
    return;
  }
  const entries = Object.entries(r.counts).sort(([a], [b]) => (a === "none") - (b === "none") || a.localeCompare(b));
  el.chart.innerHTML = entries
    .map(([subset, count]) => {
      const pct = (100 * count) / n;
      return (
        `<div class="bar" data-subset="${escapeHtml(subset)}" data-count="${count}">` +
        `<span class="label" style="color:${subsetColor(subset)}">${escapeHtml(subset)}</span>` +
        `<span class="track"><span class="fill" style="display:block;width:${pct}%;background:${subsetColor(subset)}"></span></span>` +
        `<span class="value"><span class="count">${count.toLocaleString("en-US")}</span><span class="pct">${pct.toFixed(1)}%</span></span>` +
        `</div>`
      );
    })
    .join("");
  el.chart.dataset.total = n;
  el.chart.dataset.run = Number(el.chart.dataset.run ?? 0) + 1; // tells a watcher (or a test) a new run is drawn
  // The note is canaryc simulate's own (the same Rust function says what was simulated).
  const took = `${ms < 1 ? "<1" : ms.toFixed(0)} ms in the browser`;
  el.simNote.textContent = `${r.note} · ${took}`;
  el.simNote.dataset.note = r.note;
}

/** Past this many requests a simulation waits for the Simulate button instead of following every keystroke. */
const AUTO_SIMULATE_MAX = 100_000;

const requestChanged = debounce(() => {
  writeHash();
  evaluateNow();
  if (Number(el.simN.value) <= AUTO_SIMULATE_MAX || !el.chart.dataset.run) simulateNow();
}, 120);

// ---------------------------------------------------------------------------------------------------------
// Scenarios, user agents, sharing

function setUserAgent(id) {
  const ua = USER_AGENTS.find(([k]) => k === id)?.[2];
  const lines = el.headers.value.split("\n").filter((l) => l.trim() && !/^\s*user-agent\s*:/i.test(l));
  if (ua) lines.unshift(`user-agent: ${ua}`);
  el.headers.value = lines.join("\n");
  el.uaPreset.value = id;
}

function syncUaPreset() {
  const line = el.headers.value.split("\n").find((l) => /^\s*user-agent\s*:/i.test(l));
  const value = line ? line.slice(line.indexOf(":") + 1).trim() : "";
  const match = USER_AGENTS.find(([, , ua]) => ua === value);
  el.uaPreset.value = match ? match[0] : value ? "custom" : "";
}

function loadScenario(id) {
  const s = SCENARIOS.find((x) => x.id === id);
  if (!s) return;
  el.source.value = s.source;
  const req = SCENARIO_REQUESTS[id] ?? {};
  el.service.dataset.wanted = req.service ?? "";
  el.service.value = "";
  el.cookies.value = req.cookies ?? "";
  el.query.value = "";
  el.sourceLabels.value = req.source ?? "";
  setUserAgent(req.ua ?? "");
  el.scenario.value = id;
  el.source.scrollTop = 0;
  compileNow();
}

function matchScenario() {
  const s = SCENARIOS.find((x) => x.source === el.source.value);
  el.scenario.value = s ? s.id : "";
}

async function share() {
  writeHash();
  const url = location.href;
  try {
    await navigator.clipboard.writeText(url);
    el.shareLabel.textContent = "Link copied";
  } catch {
    window.prompt("Copy this link:", url);
  }
  setTimeout(() => (el.shareLabel.textContent = "Copy link"), 1600);
}

// ---------------------------------------------------------------------------------------------------------
// Wiring

function setup() {
  for (const s of SCENARIOS) {
    const option = new Option(s.title, s.id);
    option.title = s.description;
    el.scenario.add(option);
  }
  for (const [id, label] of USER_AGENTS) el.uaPreset.add(new Option(label, id));
  el.uaPreset.add(new Option("custom (edit the headers)", "custom"));

  const compileSoon = debounce(() => {
    compileNow();
    matchScenario();
  }, 150);
  el.source.addEventListener("input", () => {
    renderEditor(); // colours follow every keystroke; diagnostics follow the debounced compile
    compileSoon();
  });
  el.source.addEventListener("scroll", syncScroll);
  el.source.addEventListener("keydown", (e) => {
    if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.metaKey && !e.altKey) {
      e.preventDefault();
      if (!document.execCommand("insertText", false, "  ")) el.source.setRangeText("  ", el.source.selectionStart, el.source.selectionEnd, "end");
    }
  });
  el.scenario.addEventListener("change", () => el.scenario.value && loadScenario(el.scenario.value));
  el.share.addEventListener("click", share);
  el.copyJson.addEventListener("click", (e) => {
    e.preventDefault();
    if (state.result?.config) navigator.clipboard?.writeText(state.result.config);
  });
  el.uaPreset.addEventListener("change", () => {
    if (el.uaPreset.value !== "custom") setUserAgent(el.uaPreset.value);
    requestChanged();
  });
  el.headers.addEventListener("input", syncUaPreset);
  el.service.addEventListener("change", serviceChanged);
  el.request.addEventListener("input", requestChanged);
  el.request.addEventListener("change", requestChanged);
  el.request.addEventListener("submit", (e) => e.preventDefault());
  el.redraw.addEventListener("click", evaluateNow);
  el.simForm.addEventListener("submit", (e) => {
    e.preventDefault();
    simulateNow();
  });
  el.simFixed.addEventListener("change", simulateNow);
  window.addEventListener("hashchange", () => {
    const { policy } = readHash();
    if (policy != null && policy !== el.source.value) {
      el.source.value = policy;
      compileNow();
      matchScenario();
    }
  });
}

async function main() {
  setup();
  const fromUrl = readHash();
  if (fromUrl.policy != null) {
    el.source.value = fromUrl.policy;
    el.service.dataset.wanted = fromUrl.service ?? "";
    matchScenario();
    const id = el.scenario.value;
    if (id && SCENARIO_REQUESTS[id]?.ua) setUserAgent(SCENARIO_REQUESTS[id].ua);
  } else {
    const s = SCENARIOS.find((x) => x.id === DEFAULT_SCENARIO) ?? SCENARIOS[0];
    if (s) {
      el.source.value = s.source;
      el.scenario.value = s.id;
      el.service.dataset.wanted = SCENARIO_REQUESTS[s.id]?.service ?? "";
      setUserAgent(SCENARIO_REQUESTS[s.id]?.ua ?? "");
    }
  }
  renderEditor();
  try {
    await init();
  } catch (e) {
    el.status.className = "pill pill-error";
    el.status.textContent = "the compiler failed to load";
    el.decisionWhy.textContent = `Could not load the WebAssembly module: ${e}`;
    return;
  }
  state.ready = true;
  el.bundleInfo.textContent = `canary-playground ${canary.version()}`;
  compileNow();
  document.body.dataset.ready = "true";
}

main();
