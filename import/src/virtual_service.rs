//! One VirtualService → the routing of one canary service: its rules in order and its default.
//!
//! Istio tries `http` routes in order, each `match` block as its own Envoy route, and stops at the first
//! catch-all (`BuildHTTPRoutesForVirtualService`); `tcp` routes likewise, per connection. A request that no
//! route matches gets a 404 (HTTP) or reaches any pod of the service (TCP) — neither is a subset, so a
//! VirtualService without a catch-all has no policy equivalent and is refused.

use std::collections::BTreeMap;

use canary_eval::config::{Action, Cond, Protocol, Rule, Share, Split, BUCKETS};

use super::hosts::{service_host, ServiceHost};
use super::http_match;
use super::report::Report;
use super::yaml::{Field, Node, Path};

/// The gateway name Istio uses for the sidecars of the mesh.
pub const MESH: &str = "mesh";

/// What a VirtualService decides, ready to become a `service` block.
#[derive(Debug, Clone, PartialEq)]
pub struct Routing {
    pub service: ServiceHost,
    pub protocol: Protocol,
    /// Rules in order (lines are 0: the printer places them).
    pub rules: Vec<Rule>,
    pub default: String,
    /// Every subset a destination names, with where (for the DestinationRule check).
    pub subsets: Vec<(String, Path)>,
    /// Where the routes apply: `mesh` (sidecars) and/or gateway names.
    pub gateways: Vec<String>,
    /// For a VirtualService bound to gateways only: the gateway listener port its `tcp` matches name, and the
    /// service port its destinations name — two different ports by design (Istio's tcp-echo sample: listener
    /// 31400, service port 9000). The printed policy says where it came from in a comment line.
    pub listener: Option<Listener>,
    /// What the HTTP routes carry besides their destinations: the service's settings, its profiles and the
    /// profile each rule selects.
    pub settings: ImportedSettings,
}

/// Where a gateway-bound VirtualService's connections come in and where they go.
#[derive(Debug, Clone, PartialEq)]
pub struct Listener {
    /// The gateway listener port of the `tcp` match blocks.
    pub port: Option<i64>,
    /// The service port of the destinations.
    pub service_port: Option<i64>,
}

/// Where a route sends traffic, before the service's default is known.
#[derive(Debug, Clone, PartialEq)]
enum Target {
    Subset(String),
    /// Basis points per subset, summing to [`BUCKETS`], in the order written.
    Shares(Vec<(String, u32)>),
}

const HTTP_REFUSED: &[(&str, &str)] = &[
    ("redirect", "a redirect answers the request itself; a policy only chooses a subset"),
    ("directResponse", "a direct response answers the request itself; a policy only chooses a subset"),
    ("delegate", "delegated routes live in other VirtualServices: import those instead"),
    ("fault", "a policy only chooses a subset: the fault injection would be lost"),
    (
        "mirrors",
        "several mirrors are not carried: write one `mirror` + `mirrorPercentage` (a policy mirrors to one subset)",
    ),
    ("mirrorPercent", "the deprecated integer `mirrorPercent` is not carried: write `mirrorPercentage: {value: P}`"),
    ("mirror_percent", "the deprecated integer `mirror_percent` is not carried: write `mirrorPercentage: {value: P}`"),
];

/// `HTTPRoute` fields carried as route settings (README "Route settings"): the settings file's fields, and the
/// mirror, which becomes the policy's `mirror P% to SUBSET`.
const SETTINGS_FIELDS: [&str; 5] = ["timeout", "retries", "rewrite", "headers", "corsPolicy"];

/// A service's route settings as imported: the settings file's fields for every route (the catch-all route's),
/// the mirror (basis points, subset), and — when the routes differ — a profile per distinct settings set with
/// the profile each rule selects (`with NAME`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImportedSettings {
    pub settings: canary_settings::RouteSettings,
    pub mirror: Option<(u32, String)>,
    /// Named profiles (the settings file's `profiles`): each a route's whole settings.
    pub profiles: std::collections::BTreeMap<String, canary_settings::RouteSettings>,
    /// The profile each rule selects, parallel to [`Routing::rules`]; empty when no rule selects one.
    pub rule_profiles: Vec<Option<String>>,
}

/// One HTTP route's settings as read (its mirror in `settings.mirror`), before the service's are decided.
#[derive(Debug, Clone)]
struct RouteRead {
    settings: canary_settings::RouteSettings,
    /// The route's `name`, when it is one.
    name: Option<String>,
}

/// Reads the `spec` of a VirtualService in `namespace`. `None` when anything was refused (reported).
pub fn virtual_service(spec: Node<'_>, namespace: Option<&str>, report: &mut Report) -> Option<Routing> {
    let schema = [
        Field::Read("hosts"),
        Field::Read("gateways"),
        Field::Read("http"),
        Field::Read("tcp"),
        Field::Read("exportTo"),
        Field::Refused("tls", "TLS routes pick a destination by SNI, which a policy cannot read"),
    ];
    let errors_before = report.error_count();
    let fields = spec.fields(report, &schema, "a VirtualService spec")?;
    let spec_path = fields.path().clone();

    let gateways = match fields.get("gateways") {
        Some((value, path)) => {
            let list = names(Node::new(value, path), report, "gateways")?;
            if list.is_empty() {
                vec![MESH.to_string()]
            } else {
                list
            }
        }
        None => vec![MESH.to_string()],
    };
    if let Some((value, path)) = fields.get("exportTo") {
        let list = names(Node::new(value, path), report, "exportTo")?;
        report.note(
            path,
            format!(
                "exportTo [{}] is not carried: the policy applies wherever its plugin runs (`canaryc manifest \
                 --namespace`)",
                list.join(", ")
            ),
        );
    }
    let hosts_path = spec_path.key("hosts");
    let hosts = match fields.get("hosts") {
        Some((value, path)) => names(Node::new(value, path), report, "hosts")?,
        None => Vec::new(),
    };
    if hosts.is_empty() {
        report.error(&hosts_path, "a VirtualService needs `hosts`");
        return None;
    }
    // Bound to the mesh, the hosts name the service; bound only to gateways, the destinations do.
    let mesh = gateways.iter().any(|g| g == MESH);
    let mut service: Option<ServiceHost> = None;
    if mesh {
        for (i, host) in hosts.iter().enumerate() {
            let at = hosts_path.index(i);
            match service_host(host, namespace) {
                Ok(h) => match &service {
                    Some(first) if !first.same(&h) => {
                        report.error(
                            &at,
                            format!("{h} is another service than {first}: import one VirtualService per service"),
                        );
                        return None;
                    }
                    Some(_) => {}
                    None => service = Some(h),
                },
                Err(why) => {
                    report.error(&at, why);
                    return None;
                }
            }
        }
    }

    let http = fields.get("http");
    let tcp = fields.get("tcp");
    let (protocol, routes) = match (http, tcp) {
        (Some(_), Some((_, path))) => {
            report.error(path, "`http` and `tcp` routes in one VirtualService: a canary service is one or the other");
            return None;
        }
        (Some(r), None) => (Protocol::Http, r),
        (None, Some(r)) => (Protocol::Tcp, r),
        (None, None) => {
            report.error(&spec_path, "no `http` or `tcp` routes");
            return None;
        }
    };
    let mut walk = Walk {
        report,
        namespace,
        service,
        subsets: Vec::new(),
        port: None,
        listener_port: None,
        mesh,
        settings: Vec::new(),
        rule_routes: Vec::new(),
    };
    let routes_node = Node::new(routes.0, routes.1);
    let (conditional, last) = walk.routes(routes_node, protocol, &gateways)?;
    let Walk { report, service, subsets, port, listener_port, settings, rule_routes, .. } = walk;
    if report.error_count() > errors_before {
        return None;
    }
    let Some(service) = service else {
        report.error(&spec_path, "no destination names the service");
        return None;
    };
    if !mesh && protocol == Protocol::Http {
        report.note(
            &spec_path.key("gateways"),
            format!(
                "bound to gateways only: the policy decides at the gateway (`canaryc manifest --edge {} --gateway \
                 {}`), and for calls inside the mesh too, where these routes do not apply",
                service.name,
                gateways.join(" --gateway ")
            ),
        );
    } else if !mesh {
        // `--edge` places an HTTP filter in the ingress gateway; a TCP policy runs in the callers' sidecars.
        report.note(
            &spec_path.key("gateways"),
            format!(
                "bound to gateways only ({}): the policy decides {}'s connections where its filter runs, in the \
                 callers' sidecars, so for calls inside the mesh too, where these routes do not apply",
                gateways.join(", "),
                service.name
            ),
        );
    }
    let listener = (!mesh && (port.is_some() || listener_port.is_some()))
        .then(|| Listener { port: listener_port.map(|(p, _)| p), service_port: port.map(|(p, _)| p) });
    let (rules, default) = finish(conditional, last);
    let settings = service_settings(&settings, &rule_routes, rules.len());
    Some(Routing { service, protocol, rules, default, subsets, gateways, listener, settings })
}

/// State while walking the routes.
struct Walk<'r, 'n> {
    report: &'r mut Report,
    namespace: Option<&'n str>,
    /// The service every destination must name (from `hosts`, or the first destination).
    service: Option<ServiceHost>,
    subsets: Vec<(String, Path)>,
    /// The service's one port (destinations, and the match blocks of a mesh VirtualService), with where.
    port: Option<(i64, Path)>,
    /// Bound to gateways only: the one listener port the `tcp` match blocks name, with where.
    listener_port: Option<(i64, Path)>,
    /// Whether the routes apply in the mesh: there a match port is the service's port; at a gateway it is the
    /// gateway's listener port.
    mesh: bool,
    /// Each HTTP route's settings, in order (up to the catch-all).
    settings: Vec<RouteRead>,
    /// The route (index into `settings`) each conditional rule came from.
    rule_routes: Vec<usize>,
}

impl Walk<'_, '_> {
    /// Conditional rules in order, then the catch-all's target. `None` when refused (reported).
    #[allow(clippy::type_complexity)]
    fn routes(
        &mut self,
        node: Node<'_>,
        protocol: Protocol,
        gateways: &[String],
    ) -> Option<(Vec<(Cond, Target)>, Target)> {
        let what = if protocol == Protocol::Http { "http" } else { "tcp" };
        let errors_before = self.report.error_count();
        let items = node.seq(self.report, what)?;
        let mut conditional = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let path = node.path.index(i);
            let route = Node::new(item, &path);
            let fields = match protocol {
                Protocol::Http => {
                    let mut schema = vec![Field::Read("match"), Field::Read("route"), Field::Read("name")];
                    schema.extend(SETTINGS_FIELDS.iter().map(|n| Field::Read(n)));
                    schema.extend([Field::Read("mirror"), Field::Read("mirrorPercentage")]);
                    schema.extend(HTTP_REFUSED.iter().map(|(n, why)| Field::Refused(n, why)));
                    let fields = route.fields(self.report, &schema, "an http route")?;
                    self.route_settings(&fields, &path)?;
                    fields
                }
                Protocol::Tcp => {
                    route.fields(self.report, &[Field::Read("match"), Field::Read("route")], "a tcp route")?
                }
            };
            let Some((dest_value, dest_path)) = fields.get("route") else {
                self.report.error(&path, "a route without `route` destinations");
                return None;
            };
            let blocks: Vec<(Option<&canary_yaml::Value>, Path)> = match fields.get("match") {
                None => vec![(None, path.clone())],
                Some((value, match_path)) => {
                    let list = Node::new(value, match_path).seq(self.report, "match")?;
                    if list.is_empty() {
                        vec![(None, path.clone())]
                    } else {
                        list.iter().enumerate().map(|(j, v)| (Some(v), match_path.index(j))).collect()
                    }
                }
            };
            let conds: Vec<(Result<Option<Cond>, ()>, Path)> = blocks
                .into_iter()
                .map(|(value, block_path)| {
                    let cond = match value {
                        None => Ok(None),
                        Some(v) => match protocol {
                            Protocol::Http => http_match::block(Node::new(v, &block_path), gateways, self.report),
                            Protocol::Tcp => self.tcp_block(Node::new(v, &block_path), gateways),
                        },
                    };
                    (cond, block_path)
                })
                .collect();
            let target = self.destinations(Node::new(dest_value, dest_path), protocol);
            for (cond, block_path) in conds {
                match (cond, &target) {
                    (Err(()), _) | (Ok(Some(_)), None) => {}
                    (Ok(Some(cond)), Some(target)) => {
                        conditional.push((cond, target.clone()));
                        self.rule_routes.push(i);
                    }
                    (Ok(None), None) => return None,
                    (Ok(None), Some(target)) => {
                        if i + 1 < items.len() {
                            self.report.note(
                                &node.path.index(i + 1),
                                format!(
                                    "this and the later routes are never reached: {block_path} matches every \
                                     request (Istio stops there too)"
                                ),
                            );
                        }
                        return Some((conditional, target.clone()));
                    }
                }
            }
        }
        if self.report.error_count() > errors_before {
            return None;
        }
        self.report.error(
            node.path,
            if protocol == Protocol::Http {
                "no route matches every request: Istio answers 404 to the requests no route matches, which a \
                 policy cannot say; end with a route without `match`"
            } else {
                "no route matches every connection: Istio sends the others to any pod of the service, which a \
                 policy cannot say; end with a route without `match`"
            },
        );
        None
    }

    /// A `tcp` match block: only the port (the service's one), source labels and the gateways.
    fn tcp_block(&mut self, node: Node<'_>, gateways: &[String]) -> Result<Option<Cond>, ()> {
        let schema = [
            Field::Read("port"),
            Field::Read("sourceLabels"),
            Field::Read("gateways"),
            Field::Refused("sourceNamespace", "canary's `source` reads the caller's labels, not its namespace"),
            Field::Refused("destinationSubnets", "a policy cannot match destination addresses"),
            Field::Refused("sourceSubnet", "a policy cannot match source addresses"),
        ];
        if node.value.is_null() {
            return Ok(None);
        }
        let fields = node.fields(self.report, &schema, "a tcp match").ok_or(())?;
        if let Some((value, path)) = fields.get("gateways") {
            let listed = names(Node::new(value, path), self.report, "gateways").ok_or(())?;
            if !http_match::same_set(&listed, gateways) {
                self.report.error(
                    path,
                    "applies at only some of the VirtualService's gateways: a policy decides the same wherever it runs",
                );
                return Err(());
            }
        }
        if let Some((value, path)) = fields.get("port") {
            let port = Node::new(value, path).int(self.report, "port", 1..=65535).ok_or(())?;
            if self.mesh {
                self.port(port, path)?;
            } else {
                self.listener_port(port, path, gateways)?;
            }
        }
        let mut all = Vec::new();
        if let Some((value, path)) = fields.get("sourceLabels") {
            let labels = http_match::labels(Node::new(value, path), self.report)?;
            all.extend(labels.into_iter().map(|(label, value)| Cond::Source { label, value }));
        }
        Ok(http_match::conjunction(all))
    }

    /// The service's port: one value wherever a port is named, since a policy cannot tell ports apart.
    fn port(&mut self, port: i64, path: &Path) -> Result<(), ()> {
        match &self.port {
            Some((p, first)) if *p != port => {
                self.report.error(
                    path,
                    format!("port {port}, but {first} names port {p}: a policy decides for one port of a service"),
                );
                Err(())
            }
            Some(_) => Ok(()),
            None => {
                let service = self.service.as_ref().map_or("SERVICE", |s| s.name.as_str());
                self.report.note(
                    path,
                    format!(
                        "port {port}: the policy decides for the service as a whole; deploy it with `canaryc manifest \
                         --port {service}={port}`"
                    ),
                );
                self.port = Some((port, path.clone()));
                Ok(())
            }
        }
    }

    /// The gateway listener port of a VirtualService bound to gateways only: Istio's gateway picks these routes
    /// by the port a connection came in on, and sends it on to the destination's (service) port. One listener
    /// port, since a policy cannot tell them apart either.
    fn listener_port(&mut self, port: i64, path: &Path, gateways: &[String]) -> Result<(), ()> {
        match &self.listener_port {
            Some((p, first)) if *p != port => {
                self.report.error(
                    path,
                    format!(
                        "listener port {port}, but {first} names listener port {p}: a policy decides the same for \
                         every port a connection comes in on"
                    ),
                );
                Err(())
            }
            Some(_) => Ok(()),
            None => {
                self.report.note(
                    path,
                    format!(
                        "port {port} is the listener port of gateway {}; the policy decides for the service's port \
                         that the destinations name",
                        gateways.join(", ")
                    ),
                );
                self.listener_port = Some((port, path.clone()));
                Ok(())
            }
        }
    }

    /// An HTTP route's settings and mirror, kept in [`Walk::settings`] ([`service_settings`] decides the
    /// service's). `None` when refused (reported).
    fn route_settings(&mut self, fields: &super::yaml::Fields<'_>, path: &Path) -> Option<()> {
        let mut section = canary_yaml::Mapping::new();
        for name in SETTINGS_FIELDS {
            if let Some((value, _)) = fields.get(name) {
                section.insert(canary_yaml::Value::String(name.to_string()), value.clone());
            }
        }
        let mut imported = ImportedSettings::default();
        if !section.is_empty() {
            // The settings file's reader is the one validator: what it refuses, the import refuses, at this route.
            let mut top = canary_yaml::Mapping::new();
            top.insert(canary_yaml::Value::String("s".into()), canary_yaml::Value::Mapping(section));
            let text = canary_yaml::to_string(&canary_yaml::Value::Mapping(top)).unwrap_or_default();
            match canary_settings::read(&text) {
                Ok(file) => imported.settings = file.services.get("s").map(|s| s.all.clone()).unwrap_or_default(),
                Err(e) => {
                    self.report.error(path, format!("route settings: {}", e.message));
                    return None;
                }
            }
            let uri_match = fields
                .get("match")
                .and_then(|(m, _)| m.as_sequence())
                .is_some_and(|blocks| blocks.iter().any(|b| b.get("uri").is_some_and(|u| !u.is_null())));
            if uri_match && imported.settings.rewrite.as_ref().is_some_and(|r| r.uri.is_some()) {
                self.report.error(
                    &path.key("rewrite").key("uri"),
                    "a `rewrite.uri` on a route that matches `uri` replaces the matched prefix; canary's settings \
                     replace `/` (routes written without a uri match), so the rewrite would change",
                );
                return None;
            }
        }
        match (fields.get("mirror"), fields.get("mirrorPercentage")) {
            (None, Some((_, at))) => {
                self.report.error(at, "`mirrorPercentage` without `mirror`");
                return None;
            }
            (None, None) => {}
            (Some((value, at)), percentage) => {
                let subset = self.destination(Node::new(value, at))?;
                let bp = match percentage {
                    None => 10_000,
                    Some((value, at)) => {
                        let pf =
                            Node::new(value, at).fields(self.report, &[Field::Read("value")], "mirrorPercentage")?;
                        let number = pf.get("value").and_then(|(v, _)| v.as_f64());
                        let bp = number.map(|p| p * 100.0).filter(|bp| (bp.round() - bp).abs() < 1e-6);
                        match bp.filter(|bp| *bp >= 1.0 && *bp <= 10_000.0) {
                            Some(bp) => bp.round() as u32,
                            None => {
                                self.report.error(
                                    at,
                                    "`mirrorPercentage.value` must be a percentage in (0, 100] in steps of 0.01 \
                                     (0 mirrors nothing: remove the mirror)",
                                );
                                return None;
                            }
                        }
                    }
                };
                imported.settings.mirror = Some(canary_settings::Mirror { basis_points: bp, subset });
            }
        }
        let name = fields.get("name").and_then(|(v, _)| v.as_str()).map(str::to_string);
        self.settings.push(RouteRead { settings: imported.settings, name });
        Some(())
    }

    /// A route's destinations as a target. `None` when refused (reported).
    fn destinations(&mut self, node: Node<'_>, protocol: Protocol) -> Option<Target> {
        let items = node.seq(self.report, "route")?;
        if items.is_empty() {
            self.report.error(node.path, "a route without destinations");
            return None;
        }
        let mut weights: Vec<(String, i64, Path)> = Vec::new();
        let mut failed = false;
        for (i, item) in items.iter().enumerate() {
            let path = node.path.index(i);
            let mut schema = vec![Field::Read("destination"), Field::Read("weight")];
            if protocol == Protocol::Http {
                schema.push(Field::Refused(
                    "headers",
                    "a policy only chooses a subset: the header manipulation would be lost",
                ));
            }
            let Some(fields) = Node::new(item, &path).fields(self.report, &schema, "a destination") else {
                failed = true;
                continue;
            };
            let weight = match fields.get("weight") {
                Some((value, at)) => Node::new(value, at).int(self.report, "weight", 0..=i64::from(i32::MAX)),
                None => Some(0),
            };
            let Some((dest, dest_path)) = fields.get("destination") else {
                self.report.error(&path, "no `destination`");
                failed = true;
                continue;
            };
            match (self.destination(Node::new(dest, dest_path)), weight) {
                (Some(subset), Some(weight)) => weights.push((subset, weight, path)),
                _ => failed = true,
            }
        }
        if failed {
            return None;
        }
        if let [(subset, _, _)] = weights.as_slice() {
            return Some(Target::Subset(subset.clone()));
        }
        // Several destinations: weights are relative (Istio drops the zero ones).
        let total: i64 = weights.iter().map(|(_, w, _)| w).sum();
        if total == 0 {
            self.report.error(node.path, "the destination weights add up to 0 (Istio refuses it)");
            return None;
        }
        let mut by_subset: BTreeMap<&str, i64> = BTreeMap::new();
        let mut order: Vec<&str> = Vec::new();
        for (subset, w, _) in &weights {
            if *w > 0 && !order.contains(&subset.as_str()) {
                order.push(subset);
            }
            *by_subset.entry(subset).or_default() += w;
        }
        let mut shares = Vec::new();
        for subset in order {
            let w = by_subset[subset];
            let scaled = w * i64::from(BUCKETS);
            if scaled % total != 0 {
                self.report.error(
                    node.path,
                    format!(
                        "{subset} gets weight {w} of {total} = {:.4}%: canary splits in steps of 0.01%",
                        w as f64 * 100.0 / total as f64
                    ),
                );
                return None;
            }
            shares.push((subset.to_string(), u32::try_from(scaled / total).ok()?));
        }
        Some(match shares.as_slice() {
            [(only, _)] => Target::Subset(only.clone()),
            _ => Target::Shares(shares),
        })
    }

    /// One `destination`: its subset, after checking that it is the service's.
    fn destination(&mut self, node: Node<'_>) -> Option<String> {
        let schema = [Field::Read("host"), Field::Read("subset"), Field::Read("port")];
        let fields = node.fields(self.report, &schema, "a destination")?;
        let Some((host_value, host_path)) = fields.get("host") else {
            self.report.error(node.path, "a destination needs a `host`");
            return None;
        };
        let host = Node::new(host_value, host_path).str(self.report, "host")?;
        let host = match service_host(host, self.namespace) {
            Ok(h) => h,
            Err(why) => {
                self.report.error(host_path, why);
                return None;
            }
        };
        match &self.service {
            Some(service) if !service.same(&host) => {
                self.report.error(
                    host_path,
                    format!("a destination on {host}, not {service}: a policy only chooses subsets of its own service"),
                );
                return None;
            }
            Some(_) => {}
            None => self.service = Some(host),
        }
        if let Some((value, path)) = fields.get("port") {
            let port_fields = Node::new(value, path).fields(self.report, &[Field::Read("number")], "a port")?;
            if let Some((number, at)) = port_fields.get("number") {
                let n = Node::new(number, at).int(self.report, "port number", 1..=65535)?;
                self.port(n, at).ok()?;
            }
        }
        let Some((subset_value, subset_path)) = fields.get("subset") else {
            self.report.error(
                node.path,
                "a destination without a `subset` reaches every pod of the service; a policy chooses a subset",
            );
            return None;
        };
        let subset = Node::new(subset_value, subset_path).str(self.report, "subset")?;
        let valid = !subset.is_empty()
            && subset.len() <= 253
            && subset.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
            && subset.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !valid {
            self.report.error(subset_path, format!("{subset:?} is not a subset name a policy can use"));
            return None;
        }
        self.subsets.push((subset.to_string(), subset_path.clone()));
        Some(subset.to_string())
    }
}

/// The service's settings from its HTTP routes' (`reads`, the last the catch-all; `rule_routes`: the route of
/// each conditional rule; `rules`: how many rules `finish` made — one more when the catch-all splits). Routes
/// that all carry the same settings give them to the whole service, as before. Otherwise the catch-all's become
/// the service's (its mirror the policy's `mirror P% to SUBSET`; the `default` selects no profile) and every
/// route whose settings differ gets a profile with its whole settings, named after the route's `name` when that
/// is a profile name, else `route-N` (N: its index): its own mirror when it differs from the catch-all's, and
/// `unset` for each field the catch-all has and it lacks, so a profile says the route exactly.
fn service_settings(reads: &[RouteRead], rule_routes: &[usize], rules: usize) -> ImportedSettings {
    let Some(catch_all) = reads.last() else { return ImportedSettings::default() };
    let all = canary_settings::RouteSettings { mirror: None, ..catch_all.settings.clone() };
    let mut profiles: std::collections::BTreeMap<String, canary_settings::RouteSettings> = Default::default();
    let mut by_route: Vec<Option<String>> = vec![None; reads.len()];
    for (i, read) in reads.iter().enumerate() {
        if read.settings == catch_all.settings {
            continue;
        }
        let own = read.settings.fields();
        let mut profile = read.settings.clone();
        if profile.mirror == catch_all.settings.mirror {
            profile.mirror = None;
        }
        profile.unset = catch_all.settings.fields().into_iter().filter(|f| !own.contains(f)).collect();
        if let Some((name, _)) = profiles.iter().find(|(_, p)| **p == profile) {
            by_route[i] = Some(name.clone());
            continue;
        }
        let named = read.name.clone().filter(|n| profile_name(n));
        let numbered = (0..).map(|k| if k == 0 { format!("route-{i}") } else { format!("route-{i}-{k}") });
        let Some(name) = named.into_iter().chain(numbered).find(|n| !profiles.contains_key(n)) else { continue };
        profiles.insert(name.clone(), profile);
        by_route[i] = Some(name);
    }
    let mut rule_profiles: Vec<Option<String>> =
        rule_routes.iter().map(|&r| by_route.get(r).cloned().flatten()).collect();
    // The catch-all's own split rule selects no profile.
    rule_profiles.resize(rules, None);
    if rule_profiles.iter().all(Option::is_none) {
        rule_profiles.clear();
    }
    let mirror = catch_all.settings.mirror.as_ref().map(|m| (m.basis_points, m.subset.clone()));
    ImportedSettings { settings: all, mirror, profiles, rule_profiles }
}

/// Whether `name` can be written after `with` and as a settings file profile (letters, digits, `-`, `_`, `.`,
/// starting with a letter, digit or `_`).
fn profile_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && name.len() <= 63
}

/// Rules and default from the conditional routes and the catch-all. The catch-all's biggest share becomes
/// the default (a split's remainder goes there), and a conditional split leaves out the default's share —
/// it is the remainder — so S2's 50/50 route reads `50% v2` with `default v1`.
fn finish(conditional: Vec<(Cond, Target)>, last: Target) -> (Vec<Rule>, String) {
    let (default, tail) = match last {
        Target::Subset(s) => (s, None),
        Target::Shares(shares) => {
            let top = shares.iter().enumerate().max_by_key(|(i, (_, bp))| (*bp, std::cmp::Reverse(*i)));
            let default = top.map(|(_, (s, _))| s.clone()).unwrap_or_default();
            let rest: Vec<(String, u32)> = shares.into_iter().filter(|(s, _)| *s != default).collect();
            (default, Some(rest))
        }
    };
    let split = |shares: Vec<(String, u32)>, default: &str| {
        let to =
            shares.into_iter().filter(|(s, _)| s != default).map(|(subset, weight)| Share { subset, weight }).collect();
        Action::Split(Split { to, by: None })
    };
    let mut rules: Vec<Rule> = conditional
        .into_iter()
        .map(|(cond, target)| Rule {
            line: 0,
            when: Some(cond),
            then: match target {
                Target::Subset(s) => Action::Route(s),
                Target::Shares(shares) => split(shares, &default),
            },
        })
        .collect();
    if let Some(rest) = tail {
        rules.push(Rule { line: 0, when: None, then: split(rest, &default) });
    }
    (rules, default)
}

fn names(node: Node<'_>, report: &mut Report, what: &str) -> Option<Vec<String>> {
    let items = node.seq(report, what)?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = node.path.index(i);
        out.push(Node::new(item, &path).str(report, what)?.to_string());
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use canary_eval::config::Test;

    fn read(yaml: &str) -> (Option<Routing>, Report) {
        let value: canary_yaml::Value = canary_yaml::from_str(yaml).expect("yaml");
        let path = Path::root().key("spec");
        let mut report = Report::new("t.yaml", "doc 1 VirtualService/x");
        let routing = virtual_service(Node::new(&value, &path), Some("weather"), &mut report);
        (routing, report)
    }

    fn ok(yaml: &str) -> Routing {
        let (routing, report) = read(yaml);
        assert!(!report.has_errors(), "{yaml}\n{:#?}", report.messages);
        routing.expect("imported")
    }

    fn errors(yaml: &str) -> String {
        let (routing, report) = read(yaml);
        assert!(routing.is_none(), "{yaml} must be refused");
        report.messages.iter().map(|m| format!("{}: {}\n", m.path, m.text)).collect()
    }

    fn split(shares: &[(&str, u32)]) -> Action {
        Action::Split(Split {
            to: shares.iter().map(|(s, w)| Share { subset: s.to_string(), weight: *w }).collect(),
            by: None,
        })
    }

    #[test]
    fn routes_in_order_and_the_catch_all_as_default() {
        let r = ok("hosts: [forecast]
http:
- match: [{headers: {user-agent: {regex: '.*Chrome.*'}}}, {sourceLabels: {version: v2}}]
  route: [{destination: {host: forecast, subset: v2}}]
- route: [{destination: {host: forecast.weather.svc.cluster.local, subset: v1}}]");
        assert_eq!(r.service, ServiceHost { name: "forecast".into(), namespace: Some("weather".into()) });
        assert_eq!(r.default, "v1");
        assert_eq!(r.rules.len(), 2);
        assert_eq!(
            r.rules[0].when,
            Some(Cond::Header { name: "user-agent".into(), test: Test::Regex("Chrome".into()) })
        );
        assert_eq!(r.rules[1].when, Some(Cond::Source { label: "version".into(), value: "v2".into() }));
        assert_eq!(r.subsets.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), ["v2", "v1"]);
    }

    #[test]
    fn weights_are_relative_and_the_default_share_is_the_remainder() {
        let r = ok("hosts: [forecast]
http:
- match: [{headers: {x: {exact: a}}}]
  route:
  - {destination: {host: forecast, subset: v1}, weight: 1}
  - {destination: {host: forecast, subset: v2}, weight: 3}
- route:
  - {destination: {host: forecast, subset: v1}, weight: 50}
  - {destination: {host: forecast, subset: v2}, weight: 50}
  - {destination: {host: forecast, subset: v3}, weight: 0}");
        assert_eq!(r.default, "v1");
        assert_eq!(r.rules[0].then, split(&[("v2", 7500)]));
        assert_eq!(r.rules[1], Rule { line: 0, when: None, then: split(&[("v2", 5000)]) });
        let r = ok("hosts: [f]\nhttp: [{route: [{destination: {host: f, subset: v2}, weight: 7}]}]");
        assert_eq!((r.default.as_str(), r.rules.len()), ("v2", 0), "one destination takes everything");
        let r = ok("hosts: [f]
http: [{route: [{destination: {host: f, subset: v1}, weight: 20}, {destination: {host: f, subset: v2}, weight: 80}]}]");
        assert_eq!(r.default, "v2", "the biggest share is the default");
        assert_eq!(r.rules[0].then, split(&[("v1", 2000)]));
    }

    #[test]
    fn tcp_routes() {
        let r = ok("hosts: [tcp-echo]
tcp:
- match: [{port: 9000}]
  route:
  - {destination: {host: tcp-echo, subset: v1, port: {number: 9000}}, weight: 80}
  - {destination: {host: tcp-echo, subset: v2, port: {number: 9000}}, weight: 20}");
        assert_eq!((r.protocol, r.default.as_str()), (Protocol::Tcp, "v1"));
        assert_eq!(r.rules, vec![Rule { line: 0, when: None, then: split(&[("v2", 2000)]) }]);
        let e = errors(
            "hosts: [t]
tcp:
- match: [{port: 9000}]
  route: [{destination: {host: t, subset: v1, port: {number: 9001}}}]",
        );
        assert!(
            e.contains("spec.tcp[0].route[0].destination.port.number: port 9001, but spec.tcp[0].match[0].port names port 9000"),
            "{e}"
        );
    }

    /// Istio's tcp-echo sample (`samples/tcp-echo/tcp-echo-20-v2.yaml`): bound to the ingress gateway, its match
    /// port is the gateway's listener port (31400) and its destination port the service's (9000).
    #[test]
    fn gateway_tcp_routes_keep_listener_and_service_ports_apart() {
        let r = ok("hosts: ['*']
gateways: [tcp-echo-gateway]
tcp:
- match: [{port: 31400}]
  route:
  - {destination: {host: tcp-echo, port: {number: 9000}, subset: v1}, weight: 80}
  - {destination: {host: tcp-echo, port: {number: 9000}, subset: v2}, weight: 20}");
        assert_eq!((r.service.name.as_str(), r.protocol, r.default.as_str()), ("tcp-echo", Protocol::Tcp, "v1"));
        assert_eq!(r.rules, vec![Rule { line: 0, when: None, then: split(&[("v2", 2000)]) }]);
        assert_eq!(r.listener, Some(Listener { port: Some(31400), service_port: Some(9000) }));
        // Still one listener port and one service port.
        let e = errors(
            "hosts: ['*']
gateways: [g]
tcp:
- match: [{port: 31400, sourceLabels: {app: a}}]
  route: [{destination: {host: t, subset: v2, port: {number: 9000}}}]
- match: [{port: 31401}]
  route: [{destination: {host: t, subset: v1, port: {number: 9000}}}]
- route: [{destination: {host: t, subset: v1}}]",
        );
        assert!(
            e.contains("spec.tcp[1].match[0].port: listener port 31401, but spec.tcp[0].match[0].port names listener port 31400"),
            "{e}"
        );
        let e = errors(
            "hosts: ['*']
gateways: [g]
tcp:
- match: [{port: 31400}]
  route: [{destination: {host: t, subset: v2, port: {number: 9000}}}, {destination: {host: t, subset: v1, port: {number: 9001}}}]",
        );
        assert!(e.contains("port 9001, but spec.tcp[0].route[0].destination.port.number names port 9000"), "{e}");
        // In the mesh (and where the mesh is among the gateways) a match port is the service's port.
        for gateways in ["", "gateways: [mesh, g]\n"] {
            let e = errors(&format!(
                "hosts: [t]\n{gateways}tcp:\n- match: [{{port: 31400}}]\n  route: [{{destination: {{host: t, subset: v1, \
                 port: {{number: 9000}}}}}}]"
            ));
            assert!(e.contains("port 9000, but spec.tcp[0].match[0].port names port 31400"), "{gateways}{e}");
        }
        let mesh = ok("hosts: [t]\ntcp: [{route: [{destination: {host: t, subset: v1, port: {number: 9000}}}]}]");
        assert_eq!(mesh.listener, None, "a mesh VirtualService has no listener");
    }

    #[test]
    fn refusals_name_their_path() {
        let cases = [
            ("hosts: [f]\nhttp: [{match: [{uri: {prefix: /a}}], route: [{destination: {host: f, subset: v1}}]}]", "spec.http: no route matches every request"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: g, subset: v1}}]}]", "spec.http[0].route[0].destination.host: a destination on g.weather, not f.weather"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: f}}]}]", "spec.http[0].route[0].destination: a destination without a `subset`"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: f, subset: v1}, weight: 1}, {destination: {host: f, subset: v2}, weight: 2}]}]", "spec.http[0].route: v1 gets weight 1 of 3 = 33.3333%"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: f, subset: v1}}], fault: {abort: {httpStatus: 500}}}]", "spec.http[0].fault: a policy only chooses a subset"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: f, subset: v1}}], rout: []}]", "spec.http[0].rout: unknown field"),
            ("hosts: [f, g]\nhttp: []", "spec.hosts[1]: g.weather is another service than f.weather"),
            ("hosts: ['*.example.com']\nhttp: []", "spec.hosts[0]: \"*.example.com\" is a wildcard"),
            ("hosts: [f]\ntls: []\nhttp: []", "spec.tls: TLS routes"),
            ("hosts: [f]\nhttp: []\ntcp: []", "spec.tcp: `http` and `tcp` routes"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: f, subset: v1}, weight: 0}, {destination: {host: f, subset: v2}, weight: 0}]}]", "spec.http[0].route: the destination weights add up to 0"),
            ("hosts: [f]\nhttp: [{route: [{destination: {host: f, subset: 'v 1'}}]}]", "spec.http[0].route[0].destination.subset: \"v 1\" is not a subset name"),
        ];
        for (yaml, expected) in cases {
            let e = errors(yaml);
            assert!(e.contains(expected), "{yaml}\nwanted {expected}\ngot {e}");
        }
    }

    #[test]
    fn routes_with_different_settings_become_profiles() {
        let r = ok("hosts: [f]
http:
- name: slow
  match: [{headers: {a: {exact: b}}}, {headers: {a: {exact: c}}}]
  route: [{destination: {host: f, subset: v2}}]
  timeout: 5s
- match: [{headers: {a: {exact: d}}}]
  route: [{destination: {host: f, subset: v2}}]
  timeout: 1s
- name: 'not a name'
  match: [{headers: {a: {exact: e}}}]
  route: [{destination: {host: f, subset: v2}}]
  timeout: 3s
  retries: {attempts: 1}
- match: [{headers: {a: {exact: g}}}]
  route: [{destination: {host: f, subset: v2}}]
  timeout: 5s
- route: [{destination: {host: f, subset: v1}, weight: 90}, {destination: {host: f, subset: v2}, weight: 10}]
  timeout: 1s
");
        let s = &r.settings;
        assert_eq!(s.settings.timeout, Some(canary_settings::Duration(1000)), "the catch-all's are the service's");
        let names: Vec<&str> = s.profiles.keys().map(String::as_str).collect();
        assert_eq!(names, ["route-2", "slow"]);
        assert_eq!(s.profiles["slow"].timeout, Some(canary_settings::Duration(5000)));
        let want = [Some("slow"), Some("slow"), None, Some("route-2"), Some("slow"), None];
        let got: Vec<Option<&str>> = s.rule_profiles.iter().map(Option::as_deref).collect();
        assert_eq!(got, want);
        assert_eq!(r.rules.len(), want.len());
        // The same settings everywhere: no profiles.
        let same = ok("hosts: [f]\nhttp:\n- {match: [{headers: {a: {exact: b}}}], route: [{destination: {host: f, \
                       subset: v2}}], timeout: 1s}\n- {route: [{destination: {host: f, subset: v1}}], timeout: 1s}");
        assert!(same.settings.profiles.is_empty() && same.settings.rule_profiles.is_empty());
        // A field the catch-all has and a route lacks: the route's profile unsets it (and its own mirror).
        let r = ok("hosts: [f]\nhttp:\n- {match: [{headers: {a: {exact: b}}}], route: [{destination: {host: f, \
                    subset: v2}}], mirror: {host: f, subset: v3}, mirrorPercentage: {value: 2.5}}\n- {route: \
                    [{destination: {host: f, subset: v1}}], timeout: 1s, mirror: {host: f, subset: v2}}");
        let p = &r.settings.profiles["route-0"];
        assert_eq!(p.unset.iter().map(|f| f.name()).collect::<Vec<_>>(), ["timeout"]);
        assert_eq!(p.mirror, Some(canary_settings::Mirror { basis_points: 250, subset: "v3".into() }));
        assert_eq!(r.settings.mirror, Some((10_000, "v2".to_string())), "the catch-all's mirror is the service's");
        // A route without the catch-all's mirror unsets it; one with the same mirror needs no profile for it.
        let r = ok("hosts: [f]\nhttp:\n- {match: [{headers: {a: {exact: b}}}], route: [{destination: {host: f, \
                    subset: v2}}]}\n- {match: [{headers: {a: {exact: c}}}], route: [{destination: {host: f, \
                    subset: v2}}], mirror: {host: f, subset: v3}}\n- {route: [{destination: {host: f, subset: \
                    v1}}], mirror: {host: f, subset: v3}}");
        assert_eq!(r.settings.profiles.len(), 1);
        assert_eq!(r.settings.profiles["route-0"].unset.iter().map(|f| f.name()).collect::<Vec<_>>(), ["mirror"]);
        let got: Vec<Option<&str>> = r.settings.rule_profiles.iter().map(Option::as_deref).collect();
        assert_eq!(got, [Some("route-0"), None]);
    }

    #[test]
    fn later_routes_after_a_catch_all_are_noted() {
        let (routing, report) = read(
            "hosts: [f]
http:
- route: [{destination: {host: f, subset: v1}}]
- match: [{queryParams: {a: {exact: b}}}]
  route: [{destination: {host: f, subset: v2}}]",
        );
        assert!(routing.is_some(), "{:#?}", report.messages);
        assert!(report.messages.iter().any(|m| m.path == "spec.http[1]" && m.text.contains("never reached")));
    }

    #[test]
    fn gateway_bound_services_come_from_the_destinations() {
        let r = ok("hosts: ['*']
gateways: [weather-gateway]
http:
- match: [{headers: {cookie: {regex: '^(.*?;)?(user=tester)(;.*)?$'}}}]
  route: [{destination: {host: frontend, subset: v2}}]
- route: [{destination: {host: frontend, subset: v1}}]");
        assert_eq!(r.service.name, "frontend");
        assert_eq!(r.gateways, ["weather-gateway"]);
    }
}
