//! canary-yaml: Kubernetes YAML in and out.
//!
//! **Contract.** This crate owns reading YAML streams (`kubectl apply -f` files: documents separated by `---`)
//! into [`Value`]s and writing YAML from serde types. Reading is ours, on saphyr-parser's events: every error
//! names its document, YAML path (`spec.http[0].route`) and line, and aliases are paid for from a [`Budget`]
//! *before* they are expanded (each anchor's expanded size is counted in a first pass that builds nothing), so
//! an alias bomb is refused in microseconds at the alias that would overspend, while the anchors, aliases and
//! merge keys (`<<: *defaults`) of real manifests work. Writing is `yaml_serde`'s (the YAML organization's
//! continuation of serde_yaml, on the same libyaml emitter), so the manifests `canaryc` writes keep their exact
//! bytes; [`Value`] is its type, so what we read can be written back and deserialized into serde types. It
//! depends on nothing of ours, and never panics on any input: every refusal is an [`Error`].

mod budget;
mod error;
mod measure;
mod path;
mod read;
mod scalar;
mod trail;

pub use budget::Budget;
pub use error::Error;
// The importer's paths and words for values are these (it can use them once the compiler's split is done).
pub use path::Path;
pub use read::kind;
pub use yaml_serde::value::{Tag, TaggedValue};
pub use yaml_serde::{Mapping, Number, Value};

/// The documents of a YAML stream, in order (an empty document is [`Value::Null`]), within
/// [`Budget::default`].
pub fn documents(text: &str) -> Result<Vec<Value>, Error> {
    read::documents(text, &Budget::default())
}

/// [`documents`] within another budget.
pub fn documents_within(text: &str, budget: &Budget) -> Result<Vec<Value>, Error> {
    read::documents(text, budget)
}

/// A stream of at most one document (none reads as null), deserialized into `T`.
pub fn from_str<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, Error> {
    let mut docs = documents(text)?;
    if docs.len() > 1 {
        return Err(Error::other(format!("{} YAML documents where one was expected", docs.len())));
    }
    from_value(docs.pop().unwrap_or(Value::Null))
}

/// A value read by [`documents`], deserialized into `T`.
pub fn from_value<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, Error> {
    yaml_serde::from_value(value).map_err(|e| Error::other(e.to_string()))
}

/// `value` as a YAML document, in libyaml's layout (the bytes serde_yaml 0.9 wrote).
pub fn to_string<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    yaml_serde::to_string(value).map_err(|e| Error::other(e.to_string()))
}
