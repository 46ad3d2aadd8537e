//! Writing keeps libyaml's layout, byte for byte, as serde_yaml 0.9 wrote it: the manifests `canaryc` writes
//! (and their golden files) must not change with the library. `scripts/compare-manifests.sh` checks the real
//! manifests; these pin the layout choices they depend on.

use std::collections::BTreeMap;

use canary_yaml::{documents, to_string, Value};

#[derive(serde::Serialize)]
struct Object {
    kind: &'static str,
    items: Vec<u32>,
    labels: BTreeMap<&'static str, &'static str>,
    script: &'static str,
    ambiguous: Vec<&'static str>,
    empty: Vec<u8>,
    nothing: Option<u8>,
    ratio: f64,
}

#[test]
fn the_layout_is_libyamls() {
    let object = Object {
        kind: "WasmPlugin",
        items: vec![1, 2],
        labels: BTreeMap::from([("app.kubernetes.io/managed-by", "canaryc")]),
        script: "line one\nline two\n",
        ambiguous: vec!["true", "1", "", "~", "null", "0x10", "a: b", "- x", "yes", "012"],
        empty: vec![],
        nothing: None,
        ratio: 0.5,
    };
    let expected = "\
kind: WasmPlugin
items:
- 1
- 2
labels:
  app.kubernetes.io/managed-by: canaryc
script: |
  line one
  line two
ambiguous:
- 'true'
- '1'
- ''
- '~'
- 'null'
- '0x10'
- 'a: b'
- '- x'
- yes
- '012'
empty: []
nothing: null
ratio: 0.5
";
    assert_eq!(to_string(&object).expect("writes"), expected);
}

#[test]
fn what_is_written_reads_back_the_same() {
    let text = "a: [1, -2, 0.25, 'x', true, null]\nb: {c: \"multi\\nline\"}\n";
    let value = &documents(text).expect("reads")[0];
    let written = to_string(value).expect("writes");
    assert_eq!(&documents(&written).expect("reads back")[0], value);
    assert_eq!(documents("a: 1\r\nb:\r\n- x\r\n").expect("CRLF")[0]["b"][0], Value::from("x"));
}
