//! Ingress objects with ingress-nginx `canary-*` annotations → the policy that decides the same.
//!
//! ingress-nginx (controller-v1.15.1) pairs a canary Ingress (`nginx.ingress.kubernetes.io/canary: "true"`)
//! with the main Ingress of the same host and path, and decides per request in
//! `rootfs/etc/nginx/lua/balancer.lua`, `route_to_alternative_balancer` (lines 194–276):
//! * affinity first (lines 195–222): a client pinned by session affinity stays where it is — so session
//!   affinity annotations are refused: no policy says "where this client went last time";
//! * `canary-by-header` H (lines 232–256): when H is sent, `canary-by-header-value` V → canary if the value is
//!   V; else `canary-by-header-pattern` P → canary if PCRE P matches anywhere (`ngx.re.match`, unanchored);
//!   else `always` → canary, `never` → stable *and the rest is skipped*; any other value falls through;
//! * `canary-by-cookie` C (lines 258–266): `always` → canary, `never` → stable, anything else falls through;
//! * `canary-weight` W (lines 268–274): canary when `math.random(T) <= W`, T = `canary-weight-total` only when
//!   it is above 100, else 100 — so a total below 100 is ignored (W 30 of total 50 is 30%, not 60%).
//!
//! As policy rules, in that order: `header h = "V" -> canary` (or `~ "P"`, or `= "always" -> canary` and
//! `= "never" -> stable`), `cookie c=always -> canary`, `cookie c=never -> stable`, `W÷T% canary`, `default
//! stable`. The subsets are named from the two Services: `forecast-v1` and `forecast-v2` are service
//! `forecast`, subsets `v1` and `v2` (the Gateway API idiom `canaryc manifest --kind gateway-api` writes back);
//! other names give subsets `stable` and `canary`, with a note naming the Services.

use canary_eval::config::{Action, Cond, Protocol, Rule, RuleSet, Service, Share, Split, Test, BUCKETS};
use canary_yaml::Value;

use super::report::Report;
use super::yaml::{Field, Node, Path};

const PREFIX: &str = "nginx.ingress.kubernetes.io/";

/// One Ingress as read: its canary annotations and its (host, path) → backend entries.
#[derive(Debug, Clone)]
pub struct Ingress {
    pub file: String,
    pub doc: String,
    pub name: String,
    pub namespace: String,
    pub canary: bool,
    pub annotations: Vec<(String, String, Path)>,
    pub paths: Vec<Entry>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub host: String,
    pub path: String,
    pub backend: String,
    pub at: Path,
}

/// The canary annotations ingress-nginx reads (`internal/ingress/annotations/canary/main.go`).
const CANARY: [&str; 7] = [
    "canary",
    "canary-weight",
    "canary-weight-total",
    "canary-by-header",
    "canary-by-header-value",
    "canary-by-header-pattern",
    "canary-by-cookie",
];

/// Reads an Ingress document (`networking.k8s.io/v1`). `None` when refused (reported).
pub fn ingress(doc: &Value, file: &str, label: &str, report: &mut Report) -> Option<Ingress> {
    let root = Path::root();
    let schema = [
        Field::Read("apiVersion"),
        Field::Read("kind"),
        Field::Read("metadata"),
        Field::Read("spec"),
        Field::Inert("status"),
    ];
    let errors_before = report.error_count();
    let fields = Node::new(doc, &root).fields(report, &schema, "an Ingress")?;
    let api = fields.get("apiVersion").and_then(|(v, p)| Node::new(v, p).str(report, "apiVersion"));
    if api != Some("networking.k8s.io/v1") {
        report.error(&root.key("apiVersion"), "an Ingress is served as networking.k8s.io/v1");
        return None;
    }
    let (mut name, mut namespace, mut annotations) = (String::new(), "default".to_string(), Vec::new());
    if let Some((value, path)) = fields.get("metadata") {
        for (key, v) in Node::new(value, path).entries(report, "metadata").unwrap_or_default() {
            let at = path.key(key);
            match key {
                "name" => name = Node::new(v, &at).str(report, "name").unwrap_or_default().to_string(),
                "namespace" => namespace = Node::new(v, &at).str(report, "namespace").unwrap_or_default().to_string(),
                "annotations" => {
                    for (k, a) in Node::new(v, &at).entries(report, "annotations").unwrap_or_default() {
                        let ap = at.key(k);
                        if let Some(text) = Node::new(a, &ap).str(report, "an annotation") {
                            annotations.push((k.to_string(), text.to_string(), ap));
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let canary = annotations.iter().any(|(k, v, _)| k.strip_prefix(PREFIX) == Some("canary") && v == "true");
    let Some((spec, spec_path)) = fields.get("spec") else {
        report.error(&root, "an Ingress without `spec`");
        return None;
    };
    let spec_schema = [
        Field::Read("rules"),
        Field::Inert("ingressClassName"),
        Field::Inert("tls"),
        Field::Refused(
            "defaultBackend",
            "a default backend takes requests no rule matches: not a subset of one service, not carried",
        ),
    ];
    let spec_fields = Node::new(spec, spec_path).fields(report, &spec_schema, "an Ingress spec")?;
    let mut paths = Vec::new();
    if let Some((rules, rules_path)) = spec_fields.get("rules") {
        for (i, rule) in Node::new(rules, rules_path).seq(report, "rules").unwrap_or_default().iter().enumerate() {
            let rp = rules_path.index(i);
            let rf = Node::new(rule, &rp).fields(report, &[Field::Read("host"), Field::Read("http")], "a rule")?;
            let host = rf.get("host").and_then(|(v, p)| Node::new(v, p).str(report, "host")).unwrap_or("*").to_string();
            let Some((http, hp)) = rf.get("http") else {
                report.error(&rp, "a rule without `http` paths");
                continue;
            };
            let hf = Node::new(http, hp).fields(report, &[Field::Read("paths")], "http")?;
            let Some((list, lp)) = hf.get("paths") else { continue };
            for (j, item) in Node::new(list, lp).seq(report, "paths").unwrap_or_default().iter().enumerate() {
                let pp = lp.index(j);
                let schema = [Field::Read("path"), Field::Read("pathType"), Field::Read("backend")];
                let Some(pf) = Node::new(item, &pp).fields(report, &schema, "a path") else { continue };
                let path = pf.get("path").and_then(|(v, p)| Node::new(v, p).str(report, "path")).unwrap_or("/");
                let kind = pf.get("pathType").and_then(|(v, p)| Node::new(v, p).str(report, "pathType"));
                if path != "/" || !matches!(kind, Some("Prefix" | "ImplementationSpecific") | None) {
                    report.error(
                        &pp.key("path"),
                        format!(
                            "a canary scoped to path {path:?} ({}) is not carried: a policy decides per service, for \
                             every path (only `path: /`, `pathType: Prefix` maps to a whole service)",
                            kind.unwrap_or("no pathType")
                        ),
                    );
                    continue;
                }
                let backend = pf.get("backend").and_then(|(v, p)| {
                    let bf = Node::new(v, p).fields(report, &[Field::Read("service")], "a backend")?;
                    let (s, sp) = bf.get("service")?;
                    let sf =
                        Node::new(s, sp).fields(report, &[Field::Read("name"), Field::Inert("port")], "a service")?;
                    sf.get("name").and_then(|(n, np)| Node::new(n, np).str(report, "service name")).map(str::to_string)
                });
                match backend {
                    Some(backend) => paths.push(Entry { host: host.clone(), path: path.to_string(), backend, at: pp }),
                    None => report.error(&pp.key("backend"), "a path needs `backend.service.name`"),
                }
            }
        }
    }
    if report.error_count() > errors_before {
        return None;
    }
    Some(Ingress { file: file.to_string(), doc: label.to_string(), name, namespace, canary, annotations, paths })
}

/// What one canary Ingress says, read from its annotations.
#[derive(Debug, Default)]
struct Shaping {
    weight: Option<i64>,
    total: Option<i64>,
    header: Option<String>,
    value: Option<String>,
    pattern: Option<(String, Path)>,
    cookie: Option<String>,
}

/// Checks an Ingress's annotations: canary ones read (on the canary Ingress), session affinity and any other
/// ingress-nginx annotation refused with its path.
fn annotations(ing: &Ingress, report: &mut Report) -> Shaping {
    let mut s = Shaping::default();
    for (key, value, at) in &ing.annotations {
        let Some(short) = key.strip_prefix(PREFIX) else {
            if key != "kubernetes.io/ingress.class" {
                report.note(at, "not an ingress-nginx annotation: ignored (it does not choose a backend)");
            }
            continue;
        };
        if short == "affinity" || short.starts_with("affinity-") || short.starts_with("session-cookie") {
            report.error(
                at,
                "session affinity: ingress-nginx keeps an affinitized client on the backend it had, before any canary \
                 rule (balancer.lua route_to_alternative_balancer, lines 195–222); a policy cannot say where a \
                 client went last time",
            );
            continue;
        }
        if !CANARY.contains(&short) {
            report
                .error(at, format!("`{short}` is not carried: a policy only chooses which Service a request reaches"));
            continue;
        }
        if !ing.canary {
            if short != "canary" {
                report.note(at, "ignored by ingress-nginx on an Ingress that is not a canary (`canary: \"true\"`)");
            }
            continue;
        }
        let int = |report: &mut Report| match value.trim().parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                report.error(at, format!("`{short}` must be a non-negative integer, not {value:?}"));
                None
            }
        };
        let basic = |report: &mut Report| {
            // parser.BasicCharsRegex: `^[\w-+=\.\/\s]+$` in ingress-nginx's annotation validation.
            let ok =
                !value.is_empty() && value.chars().all(|c| c.is_alphanumeric() || c == '_' || "-+=./ \t".contains(c));
            if ok {
                Some(value.clone())
            } else {
                report
                    .error(at, format!("`{short}`: ingress-nginx refuses {value:?} (letters, digits, `_-+=./` only)"));
                None
            }
        };
        match short {
            "canary" => {}
            "canary-weight" => s.weight = int(report),
            "canary-weight-total" => s.total = int(report),
            "canary-by-header" => {
                s.header = basic(report).map(|h| h.to_ascii_lowercase());
                if s.header
                    .as_deref()
                    .is_some_and(|h| !h.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)))
                {
                    report.error(at, format!("`canary-by-header` {value:?} is not a header name"));
                    s.header = None;
                }
            }
            "canary-by-header-value" => s.value = basic(report),
            "canary-by-header-pattern" => {
                if let Err(e) = canary_eval::compile_regex(value) {
                    report
                        .error(at, format!("`canary-by-header-pattern` {value:?} is not a regex canary can run: {e}"));
                } else {
                    s.pattern = Some((value.clone(), at.clone()));
                }
            }
            "canary-by-cookie" => s.cookie = basic(report),
            _ => {}
        }
    }
    s
}

/// The services the canary Ingresses of `ingresses` decide, each with its comment lines.
pub fn services(ingresses: &[(Ingress, usize)], reports: &mut [Report]) -> Vec<(Service, Vec<String>)> {
    let mut out: Vec<(Service, Vec<String>)> = Vec::new();
    // Main Ingresses' annotations are checked too (affinity there overrides the canary as well).
    for (ing, r) in ingresses {
        if !ing.canary {
            annotations(ing, &mut reports[*r]);
        }
    }
    let mut taken: Vec<(String, String, String)> = Vec::new();
    for (canary, r) in ingresses.iter().filter(|(i, _)| i.canary) {
        let shaping = annotations(canary, &mut reports[*r]);
        if canary.paths.is_empty() {
            reports[*r].error(&Path::root().key("spec"), "a canary Ingress without rules decides nothing");
        }
        for entry in &canary.paths {
            let main = ingresses.iter().find(|(m, _)| {
                !m.canary
                    && m.namespace == canary.namespace
                    && m.paths.iter().any(|e| e.host == entry.host && e.path == entry.path)
            });
            let Some((main, _)) = main else {
                reports[*r].error(
                    &entry.at,
                    format!(
                        "canary Ingress {}/{} has no main Ingress for host {} path {} among the inputs: import it \
                         together with the Ingress it is the canary of",
                        canary.namespace, canary.name, entry.host, entry.path
                    ),
                );
                continue;
            };
            let Some(stable) = main.paths.iter().find(|e| e.host == entry.host && e.path == entry.path) else {
                continue;
            };
            let key = (canary.namespace.clone(), entry.host.clone(), entry.path.clone());
            if taken.contains(&key) {
                reports[*r].error(
                    &entry.at,
                    "a second canary for this host and path: ingress-nginx routes to one alternative backend only \
                     (balancer.lua: \"TODO: support traffic shaping for n > 1 alternative backends\")",
                );
                continue;
            }
            taken.push(key);
            let (service, stable_subset, canary_subset, note) = naming(&stable.backend, &entry.backend);
            let mut notes = vec![format!(
                "Ingress {} (canary {}) for host {}: Service {} is subset {stable_subset}, Service {} is subset \
                 {canary_subset}",
                main.name, canary.name, entry.host, stable.backend, entry.backend
            )];
            notes.extend(note);
            match rules(&shaping, &stable_subset, &canary_subset, &mut reports[*r], &entry.at, &mut notes) {
                Some(rules) => {
                    if out.iter().any(|(s, _)| s.name == service) {
                        reports[*r].error(
                            &entry.at,
                            format!(
                                "service `{service}` is canaried by two Ingresses: a policy has one block per service"
                            ),
                        );
                        continue;
                    }
                    out.push((
                        Service {
                            name: service,
                            protocol: Protocol::Http,
                            rules: RuleSet { rules, default: Some(stable_subset) },
                        },
                        notes,
                    ));
                }
                None => continue,
            }
        }
    }
    out
}

/// (service, stable subset, canary subset, note): `P-a` and `P-b` are service P with subsets a and b.
fn naming(stable: &str, canary: &str) -> (String, String, String, Option<String>) {
    if let (Some((p, a)), Some((q, b))) = (stable.rsplit_once('-'), canary.rsplit_once('-')) {
        if p == q && !p.is_empty() && !a.is_empty() && !b.is_empty() && a != b {
            return (p.to_string(), a.to_string(), b.to_string(), None);
        }
    }
    let note = format!(
        "the Services are not named SERVICE-SUBSET: deployed with `canaryc manifest --kind gateway-api`, subset \
         stable is Service {stable}-stable and canary {stable}-canary"
    );
    (stable.to_string(), "stable".into(), "canary".into(), Some(note))
}

fn rules(
    s: &Shaping,
    stable: &str,
    canary: &str,
    report: &mut Report,
    at: &Path,
    notes: &mut Vec<String>,
) -> Option<Vec<Rule>> {
    let route = |when: Cond, to: &str| Rule { line: 0, when: Some(when), then: Action::Route(to.to_string()) };
    let header = |name: &str, test: Test| Cond::Header { name: name.to_string(), test };
    let mut out = Vec::new();
    if let Some(h) = &s.header {
        match (&s.value, &s.pattern) {
            (Some(v), _) => out.push(route(header(h, Test::Eq(v.clone())), canary)),
            (None, Some((p, pat_at))) => {
                report.warning(
                    pat_at,
                    "carried as canary's regex, which agrees with PCRE on this pattern's syntax (both search the \
                     whole value)",
                );
                out.push(route(header(h, Test::Regex(p.clone())), canary));
            }
            (None, None) => {
                out.push(route(header(h, Test::Eq("always".into())), canary));
                out.push(route(header(h, Test::Eq("never".into())), stable));
            }
        }
        notes.push(format!(
            "`{h}` sent several times: nginx reads its first value, canary any value (README \"Backends\")"
        ));
    } else if s.value.is_some() || s.pattern.is_some() {
        report.note(at, "canary-by-header-value/-pattern without canary-by-header: ignored by ingress-nginx");
    }
    if let Some(c) = &s.cookie {
        out.push(route(Cond::Cookie { name: c.clone(), value: "always".into() }, canary));
        out.push(route(Cond::Cookie { name: c.clone(), value: "never".into() }, stable));
    }
    let weight = s.weight.unwrap_or(0);
    if weight > 0 {
        // balancer.lua lines 268–271: the total counts only above 100.
        let total = s.total.filter(|t| *t > 100).unwrap_or(100);
        if s.total.is_some_and(|t| t < 100) {
            report.warning(
                at,
                "canary-weight-total below 100 is ignored by ingress-nginx (balancer.lua line 269): the total is 100",
            );
        }
        let basis = i128::from(weight.min(total)) * i128::from(BUCKETS);
        if basis % i128::from(total) != 0 {
            report.error(
                at,
                format!("canary-weight {weight} of {total} is not a multiple of 0.01%: a policy's shares are"),
            );
            return None;
        }
        let share = u32::try_from(basis / i128::from(total)).unwrap_or(BUCKETS);
        out.push(Rule {
            line: 0,
            when: None,
            then: Action::Split(Split { to: vec![Share { subset: canary.to_string(), weight: share }], by: None }),
        });
    }
    Some(out)
}
