//! Validating manifests the way the Kubernetes API server does, against Istio's CRD schemas.
//!
//! The schemas come from a package registry, pinned: npm's `@kubernetes-models/istio` 3.0.1 (Istio 1.29.2's
//! `crd-all.gen.yaml`, each version's `openAPIV3Schema` compiled to an ajv validator), which
//! `scripts/setup-node.sh` installs under `build/node`. `validate.mjs` beside this file runs them in one node
//! process per test binary (a JSON object per line in, its errors per line out) and adds what a CRD schema
//! cannot say: unknown fields are errors (the API server prunes them and `kubectl apply`'s strict field
//! validation refuses them; a misspelt field is exactly the mistake a generator makes) except where the schema
//! leaves an object free-form (`x-kubernetes-preserve-unknown-fields`). Checked here besides: an ObjectMeta
//! with a DNS-1123 name and namespace ([`metadata_schema`]), and the CEL rules of `x-kubernetes-validations`
//! that can apply to generated fields ([`cel_rules`]).
//!
//! Where the CRD files themselves sit in `../shared/istio-crds/` next to the workspace (the istio/api
//! revision the project was written against), every object is also checked against them, converted to JSON
//! Schema (draft 4, the closest dialect) as follows — and one line on stderr says when they are not there:
//! * `x-kubernetes-*` keys are annotations and are dropped — except what they mean for validation:
//!   `x-kubernetes-preserve-unknown-fields: true` allows unknown fields (e.g. `pluginConfig`, EnvoyFilter patch
//!   values), and the CEL rules are [`cel_rules`].
//! * Unknown fields are errors elsewhere (`additionalProperties: false` on every object with `properties`).
//! * `nullable: true` adds `"null"` to the type; `format: int32`/`int64` become the integer range;
//!   other formats (`double`, `byte`, `date-time`) are annotations.
//! * The root gets what the API server checks besides the schema: `apiVersion` and `kind` of this CRD and an
//!   ObjectMeta with a DNS-1123 name and namespace.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::OnceLock;

use serde_json::{json, Map, Value};

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `../shared/istio-crds` next to the workspace, when it is there; one line on stderr (once) when not.
fn shared_crd_dir() -> Option<PathBuf> {
    static DIR: OnceLock<Option<PathBuf>> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = workspace().join("../shared/istio-crds");
        if dir.join("virtualservices.yaml").is_file() {
            return Some(dir);
        }
        let _ = writeln!(
            std::io::stderr(),
            "crd: skipped the extra check against the Istio CRD files ({} is absent); validated with npm \
             @kubernetes-models/istio",
            dir.display()
        );
        None
    })
    .clone()
}

/// The CRD file for a kind.
fn crd_file(kind: &str) -> Option<&'static str> {
    match kind {
        "WasmPlugin" => Some("wasmplugins.yaml"),
        "EnvoyFilter" => Some("envoyfilters.yaml"),
        "VirtualService" => Some("virtualservices.yaml"),
        "DestinationRule" => Some("destinationrules.yaml"),
        _ => None,
    }
}

/// The `validate.mjs` process: objects in, errors out, one line each.
struct Npm {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
}

impl Npm {
    fn start() -> Npm {
        let root = workspace();
        let package = root.join("build/node/node_modules/@kubernetes-models/istio/package.json");
        assert!(
            package.is_file(),
            "{} is missing: run `scripts/setup.sh` (it installs npm @kubernetes-models/istio under build/node)",
            package.display()
        );
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/manifest/validate.mjs");
        let mut child = Command::new("node")
            .arg(&script)
            .arg(&root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("node {}: {e} (node comes with the setup: `scripts/setup.sh`)", script.display())
            });
        let stdin = child.stdin.take();
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Npm { child, stdin, stdout }
    }

    fn errors(&mut self, object: &Value) -> Vec<String> {
        let stdin = self.stdin.as_mut().expect("validator stdin");
        writeln!(stdin, "{object}").and_then(|()| stdin.flush()).expect("write to validate.mjs");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read from validate.mjs");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("validate.mjs answered {line:?}: {e}"))
    }
}

impl Drop for Npm {
    fn drop(&mut self) {
        // End of input ends the script.
        drop(self.stdin.take());
        let _ = self.child.wait();
    }
}

/// Validators for whole objects: the npm package's (always) and the CRD files' (where present), built on
/// first use.
#[derive(Default)]
pub struct Crds {
    npm: Option<Npm>,
    metadata: Option<jsonschema::Validator>,
    validators: BTreeMap<(String, String), jsonschema::Validator>,
}

impl Crds {
    /// Every schema violation of `object` (empty when the API server would accept it), CEL rules included.
    pub fn errors(&mut self, object: &Value) -> Vec<String> {
        let mut errors = self.npm.get_or_insert_with(Npm::start).errors(object);
        let metadata = self.metadata.get_or_insert_with(|| {
            jsonschema::options().with_draft(jsonschema::Draft::Draft4).build(&metadata_schema()).expect("metadata")
        });
        errors
            .extend(metadata.iter_errors(&object["metadata"]).map(|e| format!("/metadata{}: {e}", e.instance_path())));
        errors.extend(cel_rules(object));
        if shared_crd_dir().is_some() {
            errors.extend(self.crd_file_errors(object));
        }
        errors
    }

    /// The violations found by the CRD files of `../shared/istio-crds` (kinds it has a file for).
    fn crd_file_errors(&mut self, object: &Value) -> Vec<String> {
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        if crd_file(&kind).is_none() {
            return Vec::new();
        }
        let api_version = object["apiVersion"].as_str().unwrap_or_default().to_string();
        let key = (kind.clone(), api_version.clone());
        if !self.validators.contains_key(&key) {
            let schema = match object_schema(&kind, &api_version) {
                Ok(schema) => schema,
                Err(e) => return vec![e],
            };
            let validator = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft4)
                .build(&schema)
                .unwrap_or_else(|e| panic!("{kind} {api_version}: schema does not compile: {e}"));
            self.validators.insert(key.clone(), validator);
        }
        self.validators[&key].iter_errors(object).map(|e| format!("{}: {e}", e.instance_path())).collect()
    }
}

/// The JSON Schema of a whole `kind` object at `api_version` (`group/version`); an error when the API server
/// would not know that kind at that version.
pub fn object_schema(kind: &str, api_version: &str) -> Result<Value, String> {
    let dir = shared_crd_dir().ok_or_else(|| "no ../shared/istio-crds".to_string())?;
    let path = dir.join(crd_file(kind).ok_or_else(|| format!("no CRD for kind {kind:?}"))?);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let crd: Value = canary_yaml::from_str(&text).expect("CRD is YAML");
    assert_eq!(crd["spec"]["names"]["kind"], kind, "{}", path.display());
    let (group, version) = api_version.split_once('/').ok_or_else(|| format!("apiVersion {api_version:?}"))?;
    if crd["spec"]["group"] != group {
        return Err(format!("{kind} is in API group {}, not {group}", crd["spec"]["group"]));
    }
    let versions = crd["spec"]["versions"].as_array().expect("versions");
    let served = versions
        .iter()
        .find(|v| v["name"] == version && v["served"] == true)
        .ok_or_else(|| format!("the {kind} CRD does not serve version {version}"))?;
    let mut schema = convert(&served["schema"]["openAPIV3Schema"]);
    let root = schema.as_object_mut().expect("object schema");
    let properties = root.entry("properties").or_insert_with(|| json!({}));
    properties["apiVersion"] = json!({ "type": "string", "enum": [api_version] });
    properties["kind"] = json!({ "type": "string", "enum": [kind] });
    properties["metadata"] = metadata_schema();
    root.insert("required".into(), json!(["apiVersion", "kind", "metadata", "spec"]));
    Ok(schema)
}

fn metadata_schema() -> Value {
    let subdomain = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
    let label = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
    let label_value = "^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$";
    json!({
        "type": "object",
        "required": ["name", "namespace"],
        "additionalProperties": false,
        "properties": {
            "name": { "type": "string", "maxLength": 253, "pattern": subdomain },
            "namespace": { "type": "string", "maxLength": 63, "pattern": label },
            "labels": { "type": "object", "additionalProperties": { "type": "string", "maxLength": 63, "pattern": label_value } },
            "annotations": { "type": "object", "additionalProperties": { "type": "string" } },
        },
    })
}

/// One OpenAPI v3 structural schema node as JSON Schema draft 4 (see the module docs).
pub fn convert(node: &Value) -> Value {
    let Value::Object(map) = node else { return node.clone() };
    let preserve_unknown = map.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    let mut out = Map::new();
    for (key, value) in map {
        let converted = match key.as_str() {
            k if k.starts_with("x-kubernetes-") => continue,
            "nullable" | "format" | "description" => continue,
            "properties" => Value::Object(
                value.as_object().expect("properties").iter().map(|(k, v)| (k.clone(), convert(v))).collect(),
            ),
            "items" | "additionalProperties" | "not" => convert(value),
            "anyOf" | "oneOf" | "allOf" => Value::Array(value.as_array().expect("list").iter().map(convert).collect()),
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if map.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) && !map.contains_key("anyOf") {
        out.insert("anyOf".into(), json!([{ "type": "integer" }, { "type": "string" }]));
    }
    if map.get("nullable") == Some(&Value::Bool(true)) {
        if let Some(Value::String(t)) = map.get("type") {
            out.insert("type".into(), json!([t, "null"]));
        }
    }
    let range = match map.get("format").and_then(Value::as_str) {
        Some("int32") => Some((i64::from(i32::MIN), i64::from(i32::MAX))),
        Some("int64") => Some((i64::MIN, i64::MAX)),
        _ => None,
    };
    if let Some((lo, hi)) = range {
        let min = map.get("minimum").and_then(Value::as_i64).map_or(lo, |m| m.max(lo));
        let max = map.get("maximum").and_then(Value::as_i64).map_or(hi, |m| m.min(hi));
        out.insert("minimum".into(), json!(min));
        out.insert("maximum".into(), json!(max));
    }
    if map.contains_key("properties") && !map.contains_key("additionalProperties") && !preserve_unknown {
        out.insert("additionalProperties".into(), Value::Bool(false));
    }
    Value::Object(out)
}

/// The CEL rules (`x-kubernetes-validations`) of these CRDs that can apply to generated fields, by hand.
pub fn cel_rules(object: &Value) -> Vec<String> {
    let spec = &object["spec"];
    let has = |field: &str| spec.get(field).is_some();
    let mut errors = Vec::new();
    let no_wildcards = |labels: &Value, errors: &mut Vec<String>| {
        for (key, value) in labels.as_object().into_iter().flatten() {
            if key.is_empty() || key.contains('*') || value.as_str().is_some_and(|v| v.contains('*')) {
                errors.push(format!("selector label {key}={value}: empty key or wildcard"));
            }
        }
    };
    match object["kind"].as_str() {
        Some("WasmPlugin") => {
            if [has("selector"), has("targetRef"), has("targetRefs")].iter().filter(|&&b| b).count() > 1 {
                errors.push("spec: only one of targetRefs or selector can be set".into());
            }
            no_wildcards(&spec["selector"]["matchLabels"], &mut errors);
            let url = spec["url"].as_str().unwrap_or_default();
            let scheme = url.split_once("://").map_or("", |(s, _)| s);
            if !["", "http", "https", "oci", "file"].contains(&scheme) {
                errors.push(format!("spec.url: url must have schema one of [http, https, file, oci]: {url}"));
            }
        }
        Some("EnvoyFilter") => {
            if has("workloadSelector") && has("targetRefs") {
                errors.push("spec: only one of targetRefs or workloadSelector can be set".into());
            }
            no_wildcards(&spec["workloadSelector"]["labels"], &mut errors);
            for patch in spec["configPatches"].as_array().into_iter().flatten() {
                // `has(context) ? (context == WAYPOINT ? has(waypoint) : !has(waypoint)) : !has(waypoint)`
                let waypoint_context = patch["match"]["context"] == "WAYPOINT";
                if patch["match"].get("waypoint").is_some() != waypoint_context {
                    errors.push("configPatches[].match: only support waypointMatch when context is WAYPOINT".into());
                }
            }
        }
        // Gateway API v1.5 (`apis/v1/httproute_types.go`, `shared_types.go`, `apis/v1alpha2/tcproute_types.go`):
        // the CEL rules and list-map keys the npm validators (generated from the Go types) do not carry.
        Some("HTTPRoute") | Some("TCPRoute") => {
            let rules = spec["rules"].as_array().cloned().unwrap_or_default();
            let matches: usize = rules.iter().map(|r| r["matches"].as_array().map_or(0, Vec::len)).sum();
            if matches > 128 {
                errors.push(format!("spec.rules: {matches} matches, the total across all rules must be <= 128"));
            }
            for (i, rule) in rules.iter().enumerate() {
                for backend in rule["backendRefs"].as_array().into_iter().flatten() {
                    let group = backend["group"].as_str().unwrap_or_default();
                    let kind = backend["kind"].as_str().unwrap_or("Service");
                    if group.is_empty() && kind == "Service" && backend.get("port").is_none() {
                        errors.push(format!("spec.rules[{i}].backendRefs: Must have port for Service reference"));
                    }
                }
                for m in rule["matches"].as_array().into_iter().flatten() {
                    let names: Vec<String> = m["headers"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|h| h["name"].as_str().map(str::to_ascii_lowercase))
                        .collect();
                    if names.iter().collect::<std::collections::BTreeSet<_>>().len() != names.len() {
                        errors.push(format!("spec.rules[{i}].matches[].headers: duplicate name (a list map)"));
                    }
                    let path = &m["path"];
                    if let (Some("PathPrefix" | "Exact"), Some(v)) = (path["type"].as_str(), path["value"].as_str()) {
                        if !v.starts_with('/') || v.contains("//") || v.contains('#') {
                            errors.push(format!("spec.rules[{i}].matches[].path: `{v}` is not an absolute path"));
                        }
                    }
                }
            }
            let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
            if names.iter().collect::<std::collections::BTreeSet<_>>().len() != names.len() {
                errors.push("spec.rules: Rule name must be unique within the route".into());
            }
            for parent in spec["parentRefs"].as_array().into_iter().flatten() {
                if parent["kind"] == "Service" && parent["group"] != "" {
                    errors.push("spec.parentRefs: a Service parent has the core group \"\"".into());
                }
            }
        }
        _ => {}
    }
    errors
}
