//! Arbitrary YAML → `canaryc import`: messages with paths, never a panic, and a printed policy compiles.

use canary_import::{import, Input};

/// Imports `yaml` as one file. No message is an internal error (the importer's self-check failing); a
/// refusal has at least one error and no policy; a policy compiles, and its service count matches what
/// the importer meant.
pub fn check_import(yaml: &str) -> Result<(), String> {
    let outcome = import(&[Input { name: "fuzz.yaml", text: yaml }]);
    if let Some(m) = outcome.messages.iter().find(|m| m.text.contains("internal error")) {
        return Err(format!("{m}"));
    }
    if let Some(m) = outcome.messages.iter().find(|m| m.file != "fuzz.yaml") {
        return Err(format!("a message names another file: {m}"));
    }
    let errors = outcome.errors().count();
    match (&outcome.policy, errors) {
        (Some(_), 1..) => Err(format!("a policy printed despite {errors} errors")),
        (None, 0) => Err("no policy, yet no error".to_string()),
        (Some(policy), 0) => canary_compiler::compile(policy, "imported.canary").map(drop).map_err(|d| {
            format!(
                "the imported policy does not compile:\n{}",
                canary_compiler::render(&d, policy, "imported.canary", false)
            )
        }),
        (None, _) => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_service_imports() {
        let yaml = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: forecast}\n\
                    spec:\n  hosts: [forecast]\n  http:\n  - route:\n    - destination: {host: forecast, subset: v1}\n";
        assert_eq!(check_import(yaml), Ok(()));
        assert!(import(&[Input { name: "fuzz.yaml", text: yaml }]).policy.is_some(), "the policy path is exercised");
    }

    #[test]
    fn garbage_is_refused_with_an_error() {
        assert_eq!(check_import("{["), Ok(()));
        assert_eq!(check_import("kind: VirtualService\nspec: 3\n"), Ok(()));
    }
}
