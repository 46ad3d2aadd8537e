//! The route settings a policy names (`settings "FILE"`, `mirror`, `with PROFILE`), read and resolved per
//! service for `canaryc manifest` and `canaryc diff` (README "Route settings").

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
        Err(e) => Err(Failure::Message(format!("{}:{}:{}: {}", path.display(), e.line, e.column, e.message))),
    }
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
