//! canary-import: the pipeline run backwards. `canaryc import`: Istio VirtualServices (and DestinationRules) → a policy that makes the same routing
//! decisions — exactly, or with a warning naming the one way it can differ, or not at all: whatever has no
//! exact canary form is an error naming its file, document and YAML path, and nothing is dropped silently.
//!
//! The translation follows what Istio actually programs into Envoy (`pilot/pkg/networking/core/route`):
//! routes in order with the first catch-all ending the list ([`virtual_service`]), the fields of a match
//! block ANDed ([`http_match`]), each `StringMatch` as Envoy's header matcher reads it ([`string_match`]),
//! and RE2 full matches restated for canary's regex engine ([`re2`]). The printed policy is compiled again
//! and compared with what was meant, so the text cannot say something else than the translation.
//!
//! Contract: owns reading Istio YAML and printing policy text; checks its output only through the core's
//! `compile` (`canary-compiler`) and the evaluator's types (`canary-eval`). It may not depend on the backends
//! (an import is not checked by re-lowering it, but by deciding like Istio's routes), the CLI or the language
//! server.

mod destination_rule;
mod hosts;
mod http_match;
mod http_route;
mod ingress_nginx;
mod re2;
mod render;
mod report;
mod string_match;
mod virtual_service;
mod yaml;

use std::fmt::Write as _;

use canary_eval::config::{Config, RuleSet, Service};
use canary_eval::CONFIG_VERSION;
use canary_yaml::Value;

use destination_rule::Subsets;
use report::Report;
pub use report::{Message, Severity};
use virtual_service::Routing;
use yaml::{Field, Node, Path};

/// One input file.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// How messages and the policy's header comment name it.
    pub name: &'a str,
    pub text: &'a str,
}

/// The policy (when nothing was refused) and every message, in input order.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub policy: Option<String>,
    pub messages: Vec<Message>,
    /// The route settings file the policy names (`settings "NAME"`), when a VirtualService's routes carry
    /// settings (README "Route settings"); empty otherwise.
    pub settings: canary_settings::SettingsFile,
}

impl Outcome {
    pub fn errors(&self) -> impl Iterator<Item = &Message> {
        self.messages.iter().filter(|m| m.severity == Severity::Error)
    }
}

/// The API versions Istio serves VirtualService and DestinationRule under (all with one schema).
const API_VERSIONS: [&str; 3] =
    ["networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"];

/// Where a resource came from, for messages that span documents.
#[derive(Debug, Clone)]
struct Origin {
    file: String,
    /// `doc 3 VirtualService/forecast`, as messages name it.
    doc: String,
    /// `doc 3`
    index: String,
    name: String,
}

/// What the documents held.
#[derive(Default)]
struct Collected {
    messages: Vec<Message>,
    routings: Vec<(Routing, Origin)>,
    rules: Vec<(Subsets, Origin)>,
    /// VirtualService documents seen, imported or not.
    virtual_services: usize,
    /// Ingress documents read (ingress-nginx canaries and their main Ingresses).
    ingresses: Vec<ingress_nginx::Ingress>,
    /// Services read from Gateway API HTTPRoutes/TCPRoutes, with where they came from.
    routes: Vec<(Service, Vec<String>, String)>,
}

/// Imports the VirtualServices and DestinationRules of `inputs`. Never panics, whatever the YAML. Routes with
/// settings are refused here (there is nowhere to write them): see [`import_with`].
pub fn import(inputs: &[Input<'_>]) -> Outcome {
    import_with(inputs, None)
}

/// [`import`], writing the routes' settings (timeouts, retries, rewrites, header edits, CORS) into a settings
/// file the policy names as `settings "NAME"`, and their mirror as `mirror P% to SUBSET`.
pub fn import_with(inputs: &[Input<'_>], settings_name: Option<&str>) -> Outcome {
    let mut found = Collected::default();
    for input in inputs {
        let docs = match yaml::documents(input.name, input.text) {
            Ok(docs) => docs,
            Err(message) => {
                found.messages.push(message);
                continue;
            }
        };
        for (i, doc) in docs.iter().enumerate() {
            resource(input.name, &format!("doc {}", i + 1), doc, &mut found);
        }
    }
    let Collected { mut messages, routings, rules, virtual_services, ingresses, routes } = found;
    let route_count = routes.len();
    let mut report = Report::default();
    let mut services = merge(routings, &rules, &mut report);
    messages.extend(report.messages);
    let mut reports: Vec<Report> = ingresses.iter().map(|i| Report::new(&i.file, &i.doc)).collect();
    let indexed: Vec<(ingress_nginx::Ingress, usize)> = ingresses.into_iter().zip(0..).collect();
    for (service, notes) in ingress_nginx::services(&indexed, &mut reports) {
        if services.iter().any(|(s, _, _)| s.name == service.name) {
            messages.push(file_error(
                &indexed.first().map_or(String::new(), |(i, _)| i.file.clone()),
                format!(
                    "service `{}` is routed by a VirtualService and by an Ingress canary: import one",
                    service.name
                ),
            ));
        }
        // Gateway API and ingress-nginx imports carry no route settings (their filters are refused).
        services.push((service, notes, Default::default()));
    }
    messages.extend(reports.into_iter().flat_map(|r| r.messages));
    for (service, notes, file) in routes {
        if services.iter().any(|(s, _, _)| s.name == service.name) {
            messages.push(file_error(
                &file,
                format!("service `{}` is routed twice among the inputs: import one", service.name),
            ));
        }
        services.push((service, notes, Default::default()));
    }
    let names: Vec<&str> = inputs.iter().map(|i| i.name).collect();
    if virtual_services == 0 && indexed.is_empty() && route_count == 0 {
        messages.push(file_error(&names.join(", "), "no VirtualService among the inputs: nothing to import".into()));
    }
    if messages.iter().any(|m| m.severity == Severity::Error) {
        return Outcome { policy: None, messages, settings: Default::default() };
    }
    let mut file = canary_settings::SettingsFile::default();
    let mut mirrors = Vec::new();
    let mut rule_profiles = Vec::new();
    for (service, _, imported) in &services {
        mirrors.push(imported.mirror.clone());
        rule_profiles.push(imported.rule_profiles.clone());
        if !imported.settings.is_empty() || !imported.profiles.is_empty() {
            let section = canary_settings::ServiceSettings {
                all: imported.settings.clone(),
                profiles: imported.profiles.clone(),
            };
            file.services.insert(service.name.clone(), section);
        }
    }
    if !file.services.is_empty() && settings_name.is_none() {
        let names: Vec<&String> = file.services.keys().collect();
        let text = format!(
            "the routes of {} carry route settings (timeout, retries, rewrite, headers, corsPolicy, or a route's \
             own mirror): pass --settings-out FILE to write them beside the policy",
            names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ")
        );
        messages.push(file_error(&names_joined(inputs), text));
        return Outcome { policy: None, messages, settings: Default::default() };
    }
    let header = vec![format!("Imported by `canaryc import` from {}.", names.join(", "))];
    let notes: Vec<Vec<String>> = services.iter().map(|(_, notes, _)| notes.clone()).collect();
    let config = Config {
        version: CONFIG_VERSION,
        global: RuleSet::default(),
        services: services.into_iter().map(|(s, _, _)| s).collect(),
        settings: Default::default(),
    };
    let settings_line = settings_name.filter(|_| !file.services.is_empty());
    let text = render::policy_with(&config, &header, &notes, settings_line, &mirrors, &rule_profiles);
    let meant_mirrors: std::collections::BTreeMap<String, (u32, String)> =
        config.services.iter().zip(&mirrors).filter_map(|(s, m)| m.clone().map(|m| (s.name.clone(), m))).collect();
    match self_check(&text, &config, &meant_mirrors, &rule_profiles) {
        Ok(()) => Outcome { policy: Some(text), messages, settings: file },
        Err(why) => {
            messages.push(file_error(&names.join(", "), format!("internal error: {why}; please report this input")));
            Outcome { policy: None, messages, settings: Default::default() }
        }
    }
}

fn names_joined(inputs: &[Input<'_>]) -> String {
    inputs.iter().map(|i| i.name).collect::<Vec<_>>().join(", ")
}

fn file_error(file: &str, text: String) -> Message {
    Message { severity: Severity::Error, file: file.to_string(), doc: String::new(), path: String::new(), text }
}

/// One document (or the items of a `List`).
fn resource(file: &str, label: &str, doc: &Value, found: &mut Collected) {
    if doc.is_null() {
        return;
    }
    let root = Path::root();
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = doc.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or_default();
    let bare = label;
    let label = match (kind, name) {
        ("", _) => label.to_string(),
        (kind, "") => format!("{label} {kind}"),
        (kind, name) => format!("{label} {kind}/{}", name.escape_debug()),
    };
    let mut report = Report::new(file, &label);
    if !doc.is_mapping() {
        report.error(&root, format!("not a Kubernetes object ({})", yaml::kind(doc)));
    } else if kind.is_empty() {
        report.error(&root, "not a Kubernetes object (no `kind`)");
    } else if kind == "List" || (kind.ends_with("List") && doc.get("items").is_some()) {
        let items_path = root.key("items");
        if let Some(items) = Node::new(doc.get("items").unwrap_or(&Value::Null), &items_path).seq(&mut report, "items")
        {
            for (i, item) in items.iter().enumerate() {
                resource(file, &format!("{bare} items[{i}]"), item, found);
            }
        }
    } else if kind == "VirtualService" || kind == "DestinationRule" {
        istio_resource(doc, kind, name, bare, &mut report, found);
    } else if kind == "HTTPRoute" || kind == "TCPRoute" {
        let api = doc.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
        let spec_path = root.key("spec");
        match doc.get("spec") {
            Some(spec) => {
                if let Some((service, notes)) =
                    http_route::route(kind, api, name, Node::new(spec, &spec_path), &mut report)
                {
                    found.routes.push((service, notes, file.to_string()));
                }
            }
            None => report.error(&root, format!("a {kind} without `spec`")),
        }
    } else if kind == "Ingress" {
        if let Some(ingress) = ingress_nginx::ingress(doc, file, &label, &mut report) {
            found.ingresses.push(ingress);
        }
    } else {
        report.note(&root, "ignored: only VirtualServices and DestinationRules decide which subset a request reaches");
    }
    found.messages.extend(report.messages);
}

fn istio_resource(doc: &Value, kind: &str, name: &str, index: &str, report: &mut Report, found: &mut Collected) {
    if kind == "VirtualService" {
        found.virtual_services += 1;
    }
    let root = Path::root();
    let schema = [
        Field::Read("apiVersion"),
        Field::Read("kind"),
        Field::Read("metadata"),
        Field::Read("spec"),
        Field::Inert("status"),
    ];
    let Some(fields) = Node::new(doc, &root).fields(report, &schema, kind) else { return };
    let api = fields.get("apiVersion").and_then(|(v, p)| Node::new(v, p).str(report, "apiVersion"));
    if !api.is_some_and(|a| API_VERSIONS.contains(&a)) {
        report.error(&root.key("apiVersion"), format!("{kind} is served as {}", API_VERSIONS.join(", ")));
        return;
    }
    let mut namespace = None;
    if let Some((value, path)) = fields.get("metadata") {
        for (key, v) in Node::new(value, path).entries(report, "metadata").unwrap_or_default() {
            if key == "namespace" {
                let at = path.key(key);
                namespace = Node::new(v, &at).str(report, "namespace").map(str::to_string);
            }
        }
    }
    let Some((spec, spec_path)) = fields.get("spec") else {
        report.error(&root, format!("a {kind} without `spec`"));
        return;
    };
    let origin =
        Origin { file: report.file.clone(), doc: report.doc.clone(), index: index.to_string(), name: name.to_string() };
    let errors_before = report.error_count();
    let spec = Node::new(spec, spec_path);
    if kind == "VirtualService" {
        if let Some(routing) = virtual_service::virtual_service(spec, namespace.as_deref(), report) {
            if report.error_count() == errors_before {
                found.routings.push((routing, origin));
            }
        }
    } else if let Some(subsets) = destination_rule::destination_rule(spec, namespace.as_deref(), report) {
        if report.error_count() == errors_before {
            found.rules.push((subsets, origin));
        }
    }
}

/// The services in order of first appearance, each with its comment line. Two VirtualServices for one
/// service are fine only when one serves the mesh and the other a gateway, with the same routes (a policy
/// decides the same wherever it runs).
fn merge(
    routings: Vec<(Routing, Origin)>,
    rules: &[(Subsets, Origin)],
    report: &mut Report,
) -> Vec<(Service, Vec<String>, virtual_service::ImportedSettings)> {
    let mut merged: Vec<(Routing, Origin)> = Vec::new();
    for (routing, origin) in routings {
        let at = |o: &Origin| format!("{}: {}", o.file, o.doc);
        let Some((first, first_origin)) = merged.iter_mut().find(|(r, _)| r.service.name == routing.service.name)
        else {
            merged.push((routing, origin));
            continue;
        };
        let mut error = |text: String| {
            report.messages.push(Message {
                severity: Severity::Error,
                file: origin.file.clone(),
                doc: origin.doc.clone(),
                path: String::new(),
                text,
            })
        };
        if !first.service.same(&routing.service) {
            error(format!(
                "{} is another service than {} ({}) with the same short name: a policy names services by their \
                 short name",
                routing.service,
                first.service,
                at(first_origin)
            ));
        } else if let Some(g) = routing.gateways.iter().find(|g| first.gateways.contains(g)) {
            error(format!(
                "a second VirtualService for {} at {g} (the first: {}): Istio would use only one of them",
                routing.service.name,
                at(first_origin)
            ));
        } else if (&first.rules, &first.default, first.protocol, &first.settings)
            != (&routing.rules, &routing.default, routing.protocol, &routing.settings)
        {
            error(format!(
                "{} routes differently at [{}] than at [{}] ({}): a policy decides the same wherever it runs",
                routing.service.name,
                routing.gateways.join(", "),
                first.gateways.join(", "),
                at(first_origin)
            ));
        } else {
            first.gateways.extend(routing.gateways);
            first.subsets.extend(routing.subsets);
            if first.listener.is_none() {
                first.listener = routing.listener;
            }
        }
    }
    merged
        .into_iter()
        .map(|(routing, origin)| {
            let defined: Vec<&(Subsets, Origin)> =
                rules.iter().filter(|(s, _)| s.service.same(&routing.service)).collect();
            let file = std::path::Path::new(&origin.file).file_name().map(|f| f.to_string_lossy());
            let mut note = format!("VirtualService {} ({} of {})", origin.name, origin.index, file.unwrap_or_default());
            if defined.is_empty() {
                let text = format!(
                    "no DestinationRule for {} among the inputs: its subsets are not checked",
                    routing.service.name
                );
                report.messages.push(Message {
                    severity: Severity::Note,
                    file: origin.file.clone(),
                    doc: origin.doc.clone(),
                    path: String::new(),
                    text,
                });
            } else {
                let all: Vec<&(String, Vec<(String, String)>)> = defined.iter().flat_map(|(s, _)| &s.subsets).collect();
                for (subset, path) in &routing.subsets {
                    if !all.iter().any(|(name, _)| name == subset) {
                        let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
                        let (_, rule_origin) = defined[0];
                        report.messages.push(Message {
                            severity: Severity::Error,
                            file: origin.file.clone(),
                            doc: origin.doc.clone(),
                            path: path.to_string(),
                            text: format!(
                                "subset {subset} is not defined by DestinationRule {} ({}: {}), which has [{}]",
                                rule_origin.name,
                                rule_origin.file,
                                rule_origin.doc,
                                names.join(", ")
                            ),
                        });
                    }
                }
                let described: Vec<String> = all
                    .iter()
                    .map(|(name, labels)| {
                        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
                        match labels.is_empty() {
                            true => name.clone(),
                            false => format!("{name} ({})", labels.join(", ")),
                        }
                    })
                    .collect();
                note.push_str(&format!(": subsets {}", described.join(", ")));
            }
            let mut notes = vec![note];
            if let Some(listener) = &routing.listener {
                notes.push(listener_line(&routing, listener));
            }
            let service = Service {
                name: routing.service.name.clone(),
                protocol: routing.protocol,
                rules: RuleSet { rules: routing.rules, default: Some(routing.default) },
            };
            (service, notes, routing.settings)
        })
        .collect()
}

/// The comment line of a gateway-bound VirtualService that names ports: which gateway and listener port the
/// routes came from, and which service port they decide for (a gateway's listener port and the service's port
/// differ by design, so the reader must know which is which).
fn listener_line(routing: &Routing, listener: &virtual_service::Listener) -> String {
    let gateways: Vec<&str> =
        routing.gateways.iter().map(String::as_str).filter(|g| *g != virtual_service::MESH).collect();
    let mut line = routing.service.name.clone();
    if let Some(port) = listener.service_port {
        let _ = write!(line, " port {port}");
    }
    let _ = write!(line, " as routed at gateway {}", gateways.join(", "));
    if let Some(port) = listener.port {
        let _ = write!(line, ", listener port {port}");
    }
    line
}

/// The printed policy must compile to exactly the config the import built (rule lines aside).
fn self_check(
    text: &str,
    meant: &Config,
    mirrors: &std::collections::BTreeMap<String, (u32, String)>,
    rule_profiles: &[Vec<Option<String>>],
) -> Result<(), String> {
    let compiled = canary_compiler::compile(text, "import").map_err(|diags| {
        let first = diags.first().map(|d| d.message.clone()).unwrap_or_default();
        format!("the printed policy does not compile ({first})")
    })?;
    let got_mirrors: std::collections::BTreeMap<String, (u32, String)> =
        compiled.extras.mirrors.iter().map(|(name, m)| (name.clone(), (m.basis_points, m.subset.clone()))).collect();
    if &got_mirrors != mirrors {
        return Err("the printed policy mirrors otherwise than what was imported".into());
    }
    for (i, svc) in compiled.config.services.iter().enumerate() {
        let meant_profiles = rule_profiles.get(i).map(Vec::as_slice).unwrap_or_default();
        for j in 0..svc.rules.rules.len() {
            let got = compiled.extras.profile(compiled.spans.rule(Some(i), j).start).map(|p| p.name.as_str());
            if got != meant_profiles.get(j).and_then(|p| p.as_deref()) {
                return Err("the printed policy selects other settings profiles than what was imported".into());
            }
        }
    }
    let mut got = compiled.config;
    for svc in &mut got.services {
        for rule in &mut svc.rules.rules {
            rule.line = 0;
        }
    }
    if &got != meant {
        return Err("the printed policy compiles to something else than what was imported".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Outcome {
        import(&[Input { name: "in.yaml", text }])
    }

    fn lines(outcome: &Outcome) -> Vec<String> {
        outcome.messages.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn a_stream_becomes_a_policy() {
        let out = run(r#"
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: weather-gateway}
spec: {}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: forecast, namespace: weather}
spec:
  host: forecast
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: forecast, namespace: weather}
spec:
  hosts: [forecast]
  http:
  - match: [{headers: {user-agent: {regex: ".*Chrome.*"}}}]
    route: [{destination: {host: forecast, subset: v2}}]
  - route: [{destination: {host: forecast, subset: v1}}]
"#);
        assert_eq!(
            out.policy.as_deref(),
            Some(
                "# Imported by `canaryc import` from in.yaml.\n# VirtualService forecast (doc 3 of in.yaml): subsets v1 \
                 (version=v1), v2 (version=v2)\nservice forecast {\n  header user-agent ~ \"Chrome\" -> v2\n  default \
                 v1\n}\n"
            ),
            "{:#?}",
            out.messages
        );
        assert_eq!(
            lines(&out),
            ["in.yaml: doc 1 Gateway/weather-gateway: note: ignored: only VirtualServices and DestinationRules decide \
              which subset a request reaches"]
        );
    }

    #[test]
    fn errors_name_file_document_and_path() {
        let out = run(r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: forecast}
spec:
  hosts: [forecast]
  http:
  - match: [{queryParams: {a: {exact: b}}}]
    route: [{destination: {host: forecast, subset: v2}}]
  - route: [{destination: {host: forecast, subset: v1}}]
"#);
        assert!(out.policy.is_none());
        let errors: Vec<String> = out.errors().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("in.yaml: doc 1 VirtualService/forecast: spec.http[0].match[0].queryParams: error:"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn undefined_subsets_and_conflicting_virtual_services() {
        let vs = |name: &str, gateways: &str, subset: &str| {
            let hosts = if gateways == "mesh" { "frontend" } else { "'*'" };
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}}}\nspec:\n  hosts: \
                 [{hosts}]\n  gateways: [{gateways}]\n  http:\n  - route: [{{destination: {{host: frontend, subset: \
                 {subset}}}}}]\n---\n"
            )
        };
        let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: frontend}\nspec: {host: \
                  frontend, subsets: [{name: v1}]}\n---\n";
        let out = run(&format!("{}{dr}", vs("a", "gw", "v3")));
        assert!(lines(&out).iter().any(|l| l.contains(
            "doc 1 VirtualService/a: spec.http[0].route[0].destination.subset: error: subset v3 is not defined by \
             DestinationRule frontend"
        )));
        let out = run(&format!("{}{}", vs("a", "gw", "v1"), vs("b", "gw", "v1")));
        assert!(lines(&out).iter().any(|l| l.contains("doc 2 VirtualService/b: error: a second VirtualService")));
        let out = run(&format!("{}{}", vs("a", "gw", "v1"), vs("b", "mesh", "v2")));
        assert!(out.policy.is_none() && lines(&out).iter().any(|l| l.contains("routes differently")));
        let out = run(&format!("{}{}", vs("a", "gw", "v1"), vs("b", "mesh", "v1")));
        assert!(out.policy.is_some(), "{:#?}", out.messages);
    }

    #[test]
    fn lists_and_odd_documents() {
        let out = run("apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: s}}\n---\n[1]\n---\nfoo: bar\n---\n");
        let all = lines(&out);
        assert!(all[0].starts_with("in.yaml: doc 1 items[0] Service/s: note: ignored"), "{all:#?}");
        assert!(all[1].contains("doc 2: error: not a Kubernetes object (a list)"), "{all:#?}");
        assert!(all[2].contains("doc 3: error: not a Kubernetes object (no `kind`)"), "{all:#?}");
        assert!(run("a: [").errors().next().is_some_and(|m| m.text.starts_with("not YAML")));
        let only_rules =
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: f}\nspec: {host: f}\n";
        assert!(lines(&run(only_rules))
            .iter()
            .any(|l| l == "in.yaml: error: no VirtualService among the inputs: nothing to import"));
        let out = run("apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: x}\nspec: {}");
        assert!(lines(&out)[0].contains("apiVersion: error: VirtualService is served as"), "{:#?}", lines(&out));
    }
}
