// Validates Kubernetes objects against Istio's CRD schemas as npm's @kubernetes-models/istio ships them:
// Istio 1.29.2's crd-all.gen.yaml, each version's openAPIV3Schema compiled to an ajv validator
// (`_schemas/<Group><Version><Kind>.js`), installed pinned under build/node by scripts/setup-node.sh; and
// Gateway API objects (group gateway.networking.k8s.io) against @kubernetes-models/gateway-api 2.0.0, whose
// validators are generated from Gateway API v1.5's Go types (HTTPRoute v1, TCPRoute v1alpha2).
// canaryc/tests/manifest/crd.rs runs this once per test binary and talks to it line by line:
//   stdin:  one JSON object per line;   stdout: one JSON array of error strings per line ([] = valid).
//
// What the compiled validators check: types, enums, required fields, oneOf/anyOf, patterns, numeric ranges and
// formats (int32, …). What they do not: unknown fields, since a CRD schema never says
// `additionalProperties: false` — the API server prunes unknown fields and `kubectl apply` (strict field
// validation) refuses them, and a misspelt field is exactly the mistake a generator makes. So every object is
// validated through proxies that record which field names the validator asks for: an object whose schema names
// its fields (the validator asked for at least one name, present or not) must have no field it did not ask
// for; an object it asked nothing of is free-form (`x-kubernetes-preserve-unknown-fields`, e.g. a WasmPlugin's
// `pluginConfig`), and a map (`additionalProperties: <schema>`) is enumerated, which accepts every key.
// CEL rules (`x-kubernetes-validations`) and ObjectMeta's name rules are checked by crd.rs.
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

const root = process.argv[2];
if (!root) {
  console.error("usage: node validate.mjs WORKSPACE_ROOT");
  process.exit(2);
}
const pkg = join(root, "build/node/node_modules/@kubernetes-models/istio");
try {
  readFileSync(join(pkg, "package.json"));
} catch {
  console.error(`${pkg} is missing: run scripts/setup.sh (it installs @kubernetes-models/istio under build/node)`);
  process.exit(3);
}

const gatewayPkg = join(root, "build/node/node_modules/@kubernetes-models/gateway-api");

const capital = (s) => s.charAt(0).toUpperCase() + s.slice(1);
const validators = new Map();

/** The compiled validator for `apiVersion` + `kind`, or an error string when the package has none. */
async function validator(apiVersion, kind) {
  const key = `${apiVersion} ${kind}`;
  if (!validators.has(key)) {
    const [group, version] = String(apiVersion).split("/");
    let found = null;
    if (group && version && /^[A-Za-z0-9.]+$/.test(group + version) && /^[A-Za-z]+$/.test(kind)) {
      // Gateway API kinds come from @kubernetes-models/gateway-api (generated from the Go types of Gateway
      // API v1.5: `_schemas/IoK8sSigsGatewayApiApis<Version><Kind>.js`), the rest from the Istio package.
      const file =
        group === "gateway.networking.k8s.io"
          ? join(gatewayPkg, "_schemas", `IoK8sSigsGatewayApiApis${capital(version)}${kind}.js`)
          : join(pkg, "_schemas", `${group.split(".").map(capital).join("")}${capital(version)}${kind}.js`);
      try {
        readFileSync(file);
        found = (await import(pathToFileURL(file).href)).validate;
      } catch {
        found = null;
      }
    }
    validators.set(key, found ?? `the ${kind} CRD does not serve version ${version ?? apiVersion} (apiVersion ${apiVersion})`);
  }
  return validators.get(key);
}

/** `value` wrapped so that reads are recorded per object (`objects`: {path, keys, asked, enumerated}). */
function watched(value, path, objects) {
  if (value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((v, i) => watched(v, `${path}/${i}`, objects));
  const record = { path, keys: Object.keys(value), asked: new Set(), enumerated: false };
  objects.push(record);
  const target = {};
  for (const [k, v] of Object.entries(value)) target[k] = watched(v, `${path}/${escape(k)}`, objects);
  return new Proxy(target, {
    get(t, k, r) {
      if (typeof k === "string") record.asked.add(k);
      return Reflect.get(t, k, r);
    },
    has(t, k) {
      if (typeof k === "string") record.asked.add(k);
      return Reflect.has(t, k);
    },
    ownKeys(t) {
      record.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

const escape = (k) => k.replaceAll("~", "~0").replaceAll("/", "~1");

function at(object, pointer) {
  let v = object;
  for (const part of pointer.split("/").slice(1)) {
    v = v?.[part.replaceAll("~1", "/").replaceAll("~0", "~")];
  }
  return v;
}

/** An ajv error in words, close to the jsonschema crate's (crd.rs's other validator). */
function describe(e, object) {
  const value = JSON.stringify(at(object, e.instancePath));
  const p = e.params ?? {};
  switch (e.keyword) {
    case "required":
      return `"${p.missingProperty}" is a required property`;
    case "type":
      return `${value} is not of type "${p.type}"`;
    case "enum":
      return `${value} is not one of ${JSON.stringify(p.allowedValues ?? [])}`;
    case "maximum":
    case "exclusiveMaximum":
      return `${value} is greater than the maximum of ${p.limit}`;
    case "minimum":
    case "exclusiveMinimum":
      return `${value} is less than the minimum of ${p.limit}`;
    case "pattern":
      return `${value} does not match "${p.pattern}"`;
    case "format":
      return `${value} is not a "${p.format}"`;
    default:
      return `${e.keyword} ${JSON.stringify(p)} (${e.schemaPath})`;
  }
}

async function check(object) {
  if (object === null || typeof object !== "object" || Array.isArray(object)) return ["not an object"];
  const validate = await validator(object.apiVersion, object.kind);
  if (typeof validate === "string") return [validate];
  const objects = [];
  validate(watched(object, "", objects));
  const errors = (validate.errors ?? []).map((e) => `${e.instancePath}: ${describe(e, object)}`);
  for (const o of objects) {
    // apiVersion and kind chose the validator: they are known wherever it did not ask.
    const known = o.path === "" ? new Set([...o.asked, "apiVersion", "kind"]) : o.asked;
    if (o.enumerated || o.asked.size === 0) continue;
    for (const k of o.keys) {
      if (!known.has(k)) errors.push(`${o.path}: unknown field: '${k}' was unexpected (the schema has no such field)`);
    }
  }
  return [...new Set(errors)];
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  let out;
  try {
    out = await check(JSON.parse(line));
  } catch (e) {
    out = [`validator failed: ${e}`];
  }
  process.stdout.write(`${JSON.stringify(out)}\n`);
}
