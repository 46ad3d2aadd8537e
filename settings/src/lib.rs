//! canary-settings: the route settings file a policy names with `settings "FILE"` (README "Route settings").
//!
//! A section per service, in Istio `HTTPRoute` field names operators already know — `timeout`, `retries`
//! (`attempts`, `perTryTimeout`, `retryOn`), `rewrite` (`uri`, `authority`), `headers` (`request`/`response`:
//! `set`, `add`, `remove`), `corsPolicy` — applying to every route of the service, and named `profiles` a rule
//! selects with `… with NAME` (a profile's fields replace the service's, field by field; a profile may also carry
//! the rule's own `mirror` + `mirrorPercentage` and `unset` fields of the service's). [`read`] parses it with
//! positions (`marked-yaml`) and refuses anything it does not know at `FILE:LINE:COL`; [`model`] is the typed
//! result the backends write ([`model::RouteSettings::istio`] is the VirtualService form) and the importer fills.
//!
//! Contract: depends on no crate of ours; the compiler core stays YAML-free (the playground links it), so the
//! file is read here, by the CLI, and handed to the backends as data.

pub mod model;
mod read;
mod write;

pub use model::{
    Cors, Duration, Field, HeaderOps, Headers, Mirror, OriginMatch, Retries, Rewrite, RouteSettings, ServiceSettings,
    SettingsFile,
};
pub use read::{read, SettingsError};
pub use write::to_yaml;
