//! The route settings a policy names (`settings "FILE"`, `mirror`, `with PROFILE`), read and resolved per
//! service for `canaryc manifest` and `canaryc diff` (README "Route settings").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use canary_backends::route_settings::{service_routes, ServiceRoutes};
use canary_compiler::Compiled;
use canary_dsl::ast::Span;
use canary_settings::SettingsFile;

use super::{color, Failure};

/// The settings file of a policy, if it names one: its path (relative to the policy's directory) and contents.
pub(crate) struct Loaded {
    pub path: Option<PathBuf>,
    pub file: Option<SettingsFile>,
}

/// Reads the file `settings "FILE"` names. A file that is missing is an error at the policy's `settings`; a
/// bad one is `FILE:LINE:COL: error: …`.
pub(crate) fn load(policy: &Path, compiled: &Compiled, source: &str) -> Result<Loaded, Failure> {
    let Some((name, span)) = &compiled.extras.settings_file else { return Ok(Loaded { path: None, file: None }) };
    let path = policy.parent().unwrap_or(Path::new("")).join(name);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) => {
            let d =
                canary_dsl::Diagnostic::error(*span, format!("cannot read the settings file {}: {e}", path.display()))
                    .with_label("named here")
                    .with_hint("the path is relative to the policy's directory");
            eprint!("{}", canary_compiler::render(&[d], source, &policy.display().to_string(), color()));
            return Err(Failure::Reported);
        }
    };
    match canary_settings::read(&text) {
        Ok(file) => Ok(Loaded { path: Some(path), file: Some(file) }),
        Err(e) => {
            // Rendered as the policy's own errors are: `--> FILE:LINE:COL`, the line and a caret.
            let start = offset(&text, e.line, e.column);
            let end = text[start..].chars().next().map_or(start, |c| start + c.len_utf8());
            let d = canary_dsl::Diagnostic::error(Span::new(start, end), e.message).with_label("here");
            eprint!("{}", canary_compiler::render(&[d], &text, &path.display().to_string(), color()));
            Err(Failure::Reported)
        }
    }
}

/// The byte offset of 1-based `line` and `column` (characters) in `text`, clamped to its end.
fn offset(text: &str, line: usize, column: usize) -> usize {
    let line_start: usize = text.split_inclusive('\n').take(line.saturating_sub(1)).map(str::len).sum();
    let rest = &text[line_start.min(text.len())..];
    let within = rest.char_indices().nth(column.saturating_sub(1)).map_or(rest.len(), |(i, _)| i);
    (line_start + within).min(text.len())
}

/// `canaryc check`'s part: the settings file read (errors at `FILE:LINE:COL`), every service's profiles
/// resolved (an unknown one at its `with NAME`), and a warning for each section of a service the policy does
/// not route (it would be ignored). Returns the warnings' count.
pub(crate) fn check(policy: &Path, compiled: &Compiled, source: &str) -> Result<usize, Failure> {
    let loaded = load(policy, compiled, source)?;
    resolve_all(policy, compiled, source, &loaded)?;
    let mut warnings = 0;
    let (Some(file), Some(path)) = (&loaded.file, &loaded.path) else { return Ok(0) };
    for name in file.services.keys() {
        if !compiled.config.services.iter().any(|s| &s.name == name) {
            eprintln!(
                "{}: warning: section `{name}`: the policy routes no service `{name}`, so no route carries these \
                 settings",
                path.display()
            );
            warnings += 1;
        }
    }
    Ok(warnings)
}

/// The rule spans that reach `service`: the top-level rules (HTTP only), then its own.
pub(crate) fn rule_spans(compiled: &Compiled, service: &str, tcp: bool) -> Vec<Span> {
    let mut spans = if tcp { Vec::new() } else { compiled.spans.global.clone() };
    if let Some(i) = compiled.config.services.iter().position(|s| s.name == service) {
        spans.extend(compiled.spans.services.get(i).cloned().unwrap_or_default());
    }
    spans
}

/// `service`'s resolved settings, or the policy's errors (an unknown profile) printed at their `with NAME`.
pub(crate) fn for_service(
    policy: &Path,
    compiled: &Compiled,
    source: &str,
    loaded: &Loaded,
    service: &str,
    tcp: bool,
) -> Result<ServiceRoutes, Failure> {
    let file_name = loaded.path.as_ref().map_or_else(|| "the settings file".to_string(), |p| p.display().to_string());
    let spans = rule_spans(compiled, service, tcp);
    service_routes(&compiled.extras, loaded.file.as_ref(), &file_name, service, &spans).map_err(|diags| {
        eprint!("{}", canary_compiler::render(&diags, source, &policy.display().to_string(), color()));
        Failure::Reported
    })
}

/// Every service's resolved settings, with each rule's profile keyed by its 1-based line (what `diff` compares:
/// spans differ between two files, lines are what an operator reads). Only services with settings appear.
pub(crate) fn all_services(policy: &Path, compiled: &Compiled, source: &str) -> Result<Resolved, Failure> {
    resolve_all(policy, compiled, source, &load(policy, compiled, source)?)
}

fn resolve_all(policy: &Path, compiled: &Compiled, source: &str, loaded: &Loaded) -> Result<Resolved, Failure> {
    let mut names: Vec<(String, bool)> = compiled
        .config
        .services
        .iter()
        .map(|s| (s.name.clone(), s.protocol == canary_eval::config::Protocol::Tcp))
        .collect();
    for name in loaded.file.iter().flat_map(|f| f.services.keys()) {
        if !names.iter().any(|(n, _)| n == name) {
            names.push((name.clone(), false));
        }
    }
    let mut out = BTreeMap::new();
    for (name, tcp) in names {
        let routes = for_service(policy, compiled, source, loaded, &name, tcp)?;
        if routes.is_empty() {
            continue;
        }
        let by_line =
            routes.by_rule.iter().map(|(start, s)| (canary_dsl::line_col(source, *start).line, s.clone())).collect();
        out.insert(name, (routes, by_line));
    }
    Ok(out)
}

/// Per service: its resolved settings, and each profiled rule's settings by line.
pub(crate) type Resolved = BTreeMap<String, (ServiceRoutes, BTreeMap<usize, canary_settings::RouteSettings>)>;

/// One line per changed setting: `SERVICE: FIELD: OLD → NEW` (fields in Istio's names, `-` for none), the
/// mirror as `mirror: 10% to v3 → 20% to v3`, a rule's profile as `rule on line N: FIELD: …`.
pub(crate) fn diff_lines(old: &Resolved, new: &Resolved, only: Option<&str>) -> Vec<String> {
    let empty = (ServiceRoutes::default(), BTreeMap::new());
    let names: std::collections::BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    let mut lines = Vec::new();
    for name in names.into_iter().filter(|n| only.is_none_or(|o| o == n.as_str())) {
        let (a, b) = (old.get(name).unwrap_or(&empty), new.get(name).unwrap_or(&empty));
        fields(&a.0.all, &b.0.all, &format!("{name}: "), &mut lines);
        let rules: std::collections::BTreeSet<&usize> = a.1.keys().chain(b.1.keys()).collect();
        for line in rules {
            let (x, y) = (a.1.get(line).unwrap_or(&a.0.all), b.1.get(line).unwrap_or(&b.0.all));
            fields(x, y, &format!("{name}: rule on line {line}: "), &mut lines);
        }
    }
    lines
}

fn fields(a: &canary_settings::RouteSettings, b: &canary_settings::RouteSettings, prefix: &str, out: &mut Vec<String>) {
    let mirror = |s: &canary_settings::RouteSettings| {
        s.mirror
            .as_ref()
            .map_or("-".to_string(), |m| format!("{} to {}", canary_dsl::percent(m.basis_points), m.subset))
    };
    if a.mirror != b.mirror {
        out.push(format!("{prefix}mirror: {} → {}", mirror(a), mirror(b)));
    }
    let (a, b) = (a.istio(), b.istio());
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let show = |v: Option<&serde_json::Value>| v.map_or("-".to_string(), |v| v.to_string());
    for key in keys {
        if a.get(key) != b.get(key) {
            out.push(format!("{prefix}{key}: {} → {}", show(a.get(key)), show(b.get(key))));
        }
    }
}
