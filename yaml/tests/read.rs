//! Reading YAML streams: what real manifests use (anchors, aliases, merge keys) works; what hurts (alias bombs,
//! deep nesting, duplicate keys) is refused with its document, path and line, before it costs anything.

use std::time::{Duration, Instant};

use canary_yaml::{documents, documents_within, from_str, Budget, Error, Value};
use proptest::prelude::*;

fn refused(text: &str) -> Error {
    documents(text).expect_err("refused")
}

#[test]
fn a_stream_has_its_documents_in_order_and_keeps_empty_ones() {
    let docs = documents("a: 1\n---\n---\nb: [x, 'y']\n...\n").expect("yaml");
    assert_eq!(docs.len(), 3);
    assert_eq!(docs[0]["a"], Value::from(1));
    assert!(docs[1].is_null());
    assert_eq!(docs[2]["b"], Value::from(vec!["x", "y"]));
    assert!(documents("").expect("empty").is_empty());
    assert!(documents("# only a comment\n").expect("comment").is_empty());
    assert_eq!(documents("\u{feff}kind: List\n").expect("BOM")[0]["kind"], Value::from("List"));
}

#[test]
fn anchors_and_aliases_of_real_manifests_work() {
    let rule = "\
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: forecast}
spec:
  host: forecast
  trafficPolicy: &trafficPolicy
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {tcp: {maxConnections: 100}}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy: *trafficPolicy
  - name: v2
    labels: {version: v2}
    trafficPolicy: *trafficPolicy
";
    let doc = &documents(rule).expect("yaml")[0];
    let policy = &doc["spec"]["trafficPolicy"];
    assert_eq!(policy["loadBalancer"]["simple"], Value::from("ROUND_ROBIN"));
    for subset in 0..2 {
        assert_eq!(&doc["spec"]["subsets"][subset]["trafficPolicy"], policy);
    }
}

#[test]
fn merge_keys_merge_as_kubectl_does() {
    let text = "\
base: &base {a: 1, b: 2}
more: &more {b: 3, c: 4}
one:
  x: 0
  <<: *base
  a: 9
list:
  <<: [*more, *base]
quoted:
  '<<': *base
";
    let doc = &documents(text).expect("yaml")[0];
    // The mapping's own keys win, in their order; merged keys follow.
    let keys = |v: &Value| v.as_mapping().map(|m| m.keys().cloned().collect::<Vec<_>>()).unwrap_or_default();
    assert_eq!(keys(&doc["one"]), vec![Value::from("x"), Value::from("a"), Value::from("b")]);
    assert_eq!(doc["one"]["a"], Value::from(9));
    // Earlier mappings of a list win over later ones.
    assert_eq!(doc["list"]["b"], Value::from(3));
    assert_eq!(doc["list"]["a"], Value::from(1));
    // Only a plain `<<` is a merge key; a quoted one is a key like any other.
    assert_eq!(doc["quoted"]["<<"]["a"], Value::from(1));

    let e = refused("a: &a 1\nb:\n  <<: *a\n");
    assert_eq!(
        e.to_string(),
        "doc 1: b[\"<<\"]: a merge key takes a mapping or a list of mappings, not a number at line 3 column 3"
    );
    let e = refused("a: &a {x: 1}\nb: {<<: [*a, 3]}\n");
    assert_eq!(e.message(), "a merge key's list holds mappings only, not a number");
}

/// Nine levels of nine aliases: 9⁹ strings if expanded (`tests/corpus/imports/billion-laughs.yaml`).
fn billion_laughs() -> String {
    let mut lines = vec!["apiVersion: networking.istio.io/v1".to_string(), "kind: VirtualService".to_string()];
    lines.push("lol0: &lol0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]".to_string());
    for i in 1..10 {
        lines.push(format!("lol{i}: &lol{i} [{}]", vec![format!("*lol{}", i - 1); 9].join(", ")));
    }
    lines.push("spec: {http: [{route: *lol9}]}".to_string());
    lines.join("\n")
}

#[test]
fn a_billion_laughs_is_refused_at_its_alias_in_microseconds() {
    let text = billion_laughs();
    let e = refused(&text);
    assert!(!e.is_syntax());
    assert_eq!(e.doc(), Some(1));
    assert_eq!(e.path(), "lol4[0]");
    assert_eq!(e.position(), Some((7, 14)));
    assert_eq!(
        e.message(),
        "aliases expand to more than 10000 nodes (alias *lol3: 7381 nodes): refused before expanding"
    );
    // Fastest of a few runs: the refusal reads ~100 events and builds nothing (serde_yaml: 35–60 ms).
    let fastest = (0..20)
        .map(|_| {
            let start = Instant::now();
            assert!(documents(&text).is_err());
            start.elapsed()
        })
        .min()
        .unwrap_or_default();
    assert!(fastest < Duration::from_millis(5), "{fastest:?}");
}

#[test]
fn the_budget_counts_bytes_and_depth_too() {
    let long = "x".repeat(100_000);
    let e = refused(&format!("a: &a \"{long}\"\nb: [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"));
    assert_eq!(e.path(), "b[10]");
    assert!(e.message().starts_with("aliases expand to more than 1048576 bytes of text"), "{e}");

    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    let e = refused(&deep);
    assert_eq!(e.message(), "lists and mappings nested more than 128 deep");
    assert_eq!(e.path(), "[0]".repeat(128));

    let tower = format!("a: &a {}1{}\nb: [[*a]]\n", "[".repeat(127), "]".repeat(127));
    let e = refused(&tower);
    assert_eq!((e.path(), e.message()), ("b[0][0]", "alias *a nests lists and mappings more than 128 deep"));
    assert!(documents(&format!("a: &a {}1{}\nb: *a\n", "[".repeat(127), "]".repeat(127))).is_ok());

    let small = Budget { alias_nodes: 3, ..Budget::default() };
    assert!(documents_within("a: &a [1, 2]\nb: *a\n", &small).is_ok());
    assert!(documents_within("a: &a [1, 2]\nb: *a\nc: *a\n", &small).is_err());
}

#[test]
fn refusals_name_their_document_path_and_line() {
    let e = refused("kind: A\n---\nspec:\n  hosts: [a]\n  hosts: [b]\n");
    assert_eq!(e.to_string(), "doc 2: spec.hosts: duplicate key \"hosts\" at line 5 column 3");
    let e = refused("a: &a [*a]\n");
    assert_eq!(e.message(), "alias *a names no complete node before it in this document");
    let e = refused("a: !!int x1\n");
    assert_eq!(e.to_string(), "doc 1: a: !!int \"x1\" is not an integer at line 1 column 4");
    let e = refused("a: [\n");
    assert!(e.is_syntax());
    assert_eq!(e.doc(), Some(1));
    assert!(e.position().is_some());
    // An anchor belongs to its document.
    assert!(documents("a: &a 1\n---\nb: *a\n").is_err());
}

#[test]
fn tags_are_kept_or_decide_types_as_serde_yaml_did() {
    let doc = &documents("a: !cookie x\nb: !!str 12\nc: !!int '12'\nd: !!map {x: 1}\ne: !<tag:example.com,2000:x> 5\n")
        .expect("yaml")[0];
    match &doc["a"] {
        Value::Tagged(t) => assert_eq!((t.tag.to_string(), &t.value), ("!cookie".to_string(), &Value::from("x"))),
        other => panic!("not tagged: {other:?}"),
    }
    assert_eq!(doc["b"], Value::from("12"));
    assert_eq!(doc["c"], Value::from(12));
    assert_eq!(doc["d"]["x"], Value::from(1));
    assert_eq!(doc["e"], Value::from("5"));
    assert!(matches!(&documents("a: ! x\n").expect("yaml")[0]["a"], Value::Tagged(_)));
}

#[test]
fn from_str_reads_one_document_into_a_type() {
    #[derive(serde::Deserialize, Debug, PartialEq)]
    struct Case {
        name: String,
        ports: Vec<u16>,
    }
    let case: Case = from_str("name: a\nports: [80, 443]\n").expect("case");
    assert_eq!(case, Case { name: "a".into(), ports: vec![80, 443] });
    assert!(from_str::<Case>("name: a\n").is_err());
    assert!(from_str::<Value>("a: 1\n---\nb: 2\n").is_err());
    assert_eq!(from_str::<Value>("").expect("empty"), Value::Null);
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "(.|\n){0,200}") {
        let _ = documents(&text);
    }

    #[test]
    fn yaml_like_text_never_panics(text in "([&*!<>:,\\[\\]{}|?'\"#%@` -]|[a-c0-9]|\n|\t|---|\\.\\.\\.){0,80}") {
        let _ = documents(&text);
    }
}
