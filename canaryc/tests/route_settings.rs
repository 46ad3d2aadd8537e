//! Route settings through import and manifests (README "Route settings"): a VirtualService whose routes carry
//! timeouts, retries, rewrites, header edits, CORS and a mirror imports into a policy + settings file, and
//! `canaryc manifest --kind istio-routes` (native and filter forms) gives every route back the same fields —
//! field for field, order aside — in objects Istio's CRD schemas accept; the imported policy decides exactly as
//! the same VirtualService without its settings does. Bookinfo's reviews routes with settings and 64 generated
//! combinations of the fields are checked, and routes that differ (a mirror per route, a field only some have) as
//! profiles; the lab's files import byte-identically with `--settings-out`.

#[path = "manifest/crd.rs"]
mod crd;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{json, Value};

use crd::Crds;

fn canaryc(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_canaryc")).args(args).output().expect("canaryc runs")
}

fn ok(out: Output, what: &str) -> String {
    assert!(out.status.success(), "{what} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

fn documents(yaml: &str) -> Vec<Value> {
    canary_yaml::documents(yaml)
        .expect("each document is YAML")
        .into_iter()
        .map(|doc| serde_json::to_value(doc).expect("JSON"))
        .filter(|doc| !doc.is_null())
        .collect()
}

/// The settings fields of an HTTPRoute (the mirror reduced to its subset and percentage: its host is written
/// as the service's FQDN).
fn settings_of(route: &Value) -> Value {
    let mut out = serde_json::Map::new();
    for key in ["timeout", "retries", "rewrite", "headers", "corsPolicy", "mirrorPercentage"] {
        if let Some(v) = route.get(key) {
            out.insert(key.into(), v.clone());
        }
    }
    if let Some(m) = route.get("mirror") {
        out.insert("mirror".into(), json!({ "subset": m["subset"] }));
        out.entry("mirrorPercentage").or_insert(json!({ "value": 100.0 }));
    }
    Value::Object(out)
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("canary-route-settings-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A reviews VirtualService (Bookinfo's `virtual-service-reviews-jason-v2-v3` form) whose two routes carry
/// `settings`.
fn virtual_service(settings: &Value) -> String {
    virtual_service_per_route(settings, settings, "v3")
}

/// The same with the `jason` route carrying `first`, the catch-all (to `last_subset`) `last`.
fn virtual_service_per_route(first: &Value, last: &Value, last_subset: &str) -> String {
    let route = |m: Option<Value>, subset: &str| {
        let mut r = json!({ "route": [{ "destination": { "host": "reviews", "subset": subset } }] });
        let settings = if m.is_some() { first } else { last };
        if let Some(m) = m {
            r["match"] = m;
        }
        for (k, v) in settings.as_object().into_iter().flatten() {
            r[k] = v.clone();
        }
        r
    };
    let vs = json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "VirtualService",
        "metadata": { "name": "reviews" },
        "spec": {
            "hosts": ["reviews"],
            "http": [
                route(Some(json!([{ "headers": { "end-user": { "exact": "jason" } } }])), "v2"),
                route(None, last_subset),
            ],
        },
    });
    let dr = json!({
        "apiVersion": "networking.istio.io/v1beta1",
        "kind": "DestinationRule",
        "metadata": { "name": "reviews" },
        "spec": { "host": "reviews", "subsets": [
            { "name": "v1", "labels": { "version": "v1" } },
            { "name": "v2", "labels": { "version": "v2" } },
            { "name": "v3", "labels": { "version": "v3" } },
        ] },
    });
    format!("{}\n---\n{}\n", canary_yaml::to_string(&vs).unwrap(), canary_yaml::to_string(&dr).unwrap())
}

fn bookinfo_settings() -> Value {
    json!({
        "timeout": "0.5s",
        "retries": { "attempts": 3, "perTryTimeout": "2s", "retryOn": "gateway-error,connect-failure,503" },
        "rewrite": { "uri": "/v1/", "authority": "reviews.internal" },
        "headers": {
            "request": { "set": { "x-b3-sampled": "1" }, "add": { "x-trace": "a" }, "remove": ["x-debug"] },
            "response": { "remove": ["server"] },
        },
        "corsPolicy": {
            "allowOrigins": [{ "exact": "https://example.com" }, { "regex": "https://.*\\.example\\.com" }],
            "allowMethods": ["GET", "POST"],
            "allowHeaders": ["x-custom"],
            "exposeHeaders": ["x-served-by"],
            "maxAge": "24s",
            "allowCredentials": false,
        },
        "mirror": { "host": "reviews", "subset": "v1" },
        "mirrorPercentage": { "value": 12.5 },
    })
}

/// The 64 combinations of six settings, each with its own values (index `i`'s bits pick the fields).
fn generated() -> Vec<Value> {
    (0..64u32)
        .map(|i| {
            let mut s = serde_json::Map::new();
            if i & 1 != 0 {
                s.insert("timeout".into(), json!(format!("{}s", i % 7 + 1)));
            }
            if i & 2 != 0 {
                let mut r = json!({ "attempts": i % 4 });
                if i % 3 == 0 {
                    r["perTryTimeout"] = json!("0.25s");
                }
                if i % 5 != 0 {
                    r["retryOn"] = json!(["5xx", "reset,503", "connect-failure,refused-stream"][(i % 3) as usize]);
                }
                s.insert("retries".into(), r);
            }
            if i & 4 != 0 {
                s.insert(
                    "rewrite".into(),
                    if i % 2 == 0 { json!({ "uri": "/v2/" }) } else { json!({ "authority": "b" }) },
                );
            }
            if i & 8 != 0 {
                s.insert("headers".into(), json!({ "response": { "set": { format!("x-{i}"): "v" } } }));
            }
            if i & 16 != 0 {
                s.insert("corsPolicy".into(), json!({ "allowOrigins": [{ "prefix": "https://" }], "maxAge": "1s" }));
            }
            if i & 32 != 0 {
                s.insert("mirror".into(), json!({ "host": "reviews", "subset": "v1" }));
                if i % 3 != 0 {
                    s.insert("mirrorPercentage".into(), json!({ "value": f64::from(i % 100 + 1) / 4.0 }));
                }
            }
            Value::Object(s)
        })
        .collect()
}

/// Imports `settings` on the reviews routes, writes the manifests and checks the round trip.
fn round_trip(settings: &Value, name: &str, crds: &mut Crds) {
    let dir = tmp(name);
    let (vs, policy, file) = (dir.join("vs.yaml"), dir.join("reviews.canary"), dir.join("reviews.routes.yaml"));
    std::fs::write(&vs, virtual_service(settings)).unwrap();
    let _ = std::fs::remove_file(&file);
    let text = ok(canaryc(&["import", &p(&vs), "--settings-out", &p(&file)]), &format!("import {name}: {settings}"));
    // `--settings-out` names the file as given: relative to where the policy is saved.
    std::fs::write(&policy, text.replace(&format!("settings \"{}\"", p(&file)), "settings \"reviews.routes.yaml\""))
        .unwrap();

    // Decides the same: the same routes without settings import into the same config.
    let bare: Value = {
        let mut s = settings.clone();
        s.as_object_mut().unwrap().clear();
        s
    };
    std::fs::write(dir.join("bare.yaml"), virtual_service(&bare)).unwrap();
    let bare_text = ok(canaryc(&["import", &p(&dir.join("bare.yaml"))]), "import bare");
    std::fs::write(dir.join("bare.canary"), bare_text).unwrap();
    // Rule lines aside (the settings line moves them): the same config.
    assert_eq!(
        compiled_without_lines(&policy),
        compiled_without_lines(&dir.join("bare.canary")),
        "{name}: the settings changed a decision"
    );

    let mut want = settings_of(settings);
    if let Some(t) = want.get_mut("retries").and_then(|r| r.get_mut("attempts")) {
        // Both spell a number; YAML reads it back as one.
        *t = json!(t.as_u64());
    }
    for backend in ["native", "filter"] {
        let yaml = ok(canaryc(&["manifest", &p(&policy), "--kind", "istio-routes", "--backend", backend]), "manifest");
        let docs = documents(&yaml);
        for doc in &docs {
            let errors = crds.errors(doc);
            assert!(errors.is_empty(), "{name} {backend}: {errors:#?}\n{doc:#}");
        }
        let vs = docs.iter().find(|d| d["kind"] == "VirtualService").expect("a VirtualService");
        let routes = vs["spec"]["http"].as_array().expect("http routes");
        for route in routes {
            assert_eq!(settings_of(route), want, "{name} {backend}: route {}", route["name"]);
        }
    }
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

#[test]
fn bookinfo_reviews_with_settings_round_trips() {
    let mut crds = Crds::default();
    round_trip(&bookinfo_settings(), "bookinfo", &mut crds);
}

#[test]
fn generated_settings_round_trip() {
    let mut crds = Crds::default();
    for (i, settings) in generated().iter().enumerate() {
        round_trip(settings, &format!("gen{i}"), &mut crds);
    }
}

#[test]
fn lab_files_import_byte_identically_with_settings_out() {
    let lab = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/istio/lab");
    let dir = tmp("lab");
    let mut n = 0;
    for entry in std::fs::read_dir(&lab).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "yaml") {
            continue;
        }
        let plain = canaryc(&["import", &p(&path)]);
        let out = dir.join("settings.yaml");
        let with = canaryc(&["import", &p(&path), "--settings-out", &p(&out)]);
        assert_eq!((plain.stdout, plain.stderr, plain.status), (with.stdout, with.stderr, with.status), "{path:?}");
        assert!(!out.exists(), "{path:?}: no settings, no file");
        n += 1;
    }
    assert!(n >= 6, "only {n} lab files");
}

#[test]
fn what_is_not_carried_stays_an_error_naming_its_path() {
    let dir = tmp("errors");
    let cases = [
        (json!({ "timeout": "1m" }), "spec.http[0]: error: route settings: `timeout`: `1m` is not a duration"),
        (json!({ "mirrorPercent": 10 }), "spec.http[0].mirrorPercent: error:"),
        (json!({ "fault": { "abort": { "httpStatus": 500 } } }), "spec.http[0].fault: error:"),
        (json!({ "mirror": { "host": "ratings", "subset": "v1" } }), "spec.http[0].mirror.host: error:"),
        (
            json!({ "mirror": { "host": "reviews", "subset": "v1" }, "mirrorPercentage": { "value": 0.001 } }),
            "spec.http[0].mirrorPercentage: error:",
        ),
    ];
    for (settings, want) in cases {
        let vs = dir.join("vs.yaml");
        std::fs::write(&vs, virtual_service(&settings)).unwrap();
        let out = canaryc(&["import", &p(&vs), "--settings-out", &p(&dir.join("s.yaml"))]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && out.stdout.is_empty(), "{settings}: {stderr}");
        assert!(stderr.contains(want), "{settings}: wanted {want:?} in\n{stderr}");
    }
    let mut text = virtual_service(&json!({ "timeout": "1s" }));
    text = text.replacen("timeout: 1s", "timeout: 2s", 1);
    std::fs::write(dir.join("vs.yaml"), text).unwrap();
    // Without --settings-out, settings have nowhere to go.
    let out = canaryc(&["import", &p(&dir.join("vs.yaml"))]);
    assert!(!out.status.success());
    // Nor does a route's own mirror (the catch-all mirrors nothing: a profile would carry it).
    let own = json!({ "mirror": { "host": "reviews", "subset": "v1" } });
    std::fs::write(dir.join("vs.yaml"), virtual_service_per_route(&own, &json!({}), "v3")).unwrap();
    let out = canaryc(&["import", &p(&dir.join("vs.yaml"))]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("or a route's own mirror): pass --settings-out FILE"), "{stderr}");
}

#[test]
fn diff_reports_a_settings_change_when_no_subset_moves() {
    let dir = tmp("diff");
    let policy = "settings \"s.yaml\"\nservice reviews {\n  mirror 10% to v3\n  default v1\n}\n";
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::create_dir_all(dir.join("b")).unwrap();
    std::fs::write(dir.join("a/p.canary"), policy).unwrap();
    std::fs::write(dir.join("b/p.canary"), policy.replace("10%", "20%")).unwrap();
    let policy = policy.replace("  default v1", "  header x = \"1\" -> v2 with own\n  default v1");
    std::fs::write(dir.join("a/p.canary"), &policy).unwrap();
    std::fs::write(dir.join("b/p.canary"), policy.replace("10%", "20%")).unwrap();
    let own = "profiles: {own: {mirror: {subset: v1}, mirrorPercentage: {value: 5}}}";
    std::fs::write(dir.join("a/s.yaml"), format!("reviews: {{timeout: 1s, {own}}}\n")).unwrap();
    let own = own.replace("value: 5", "value: 7.5");
    std::fs::write(dir.join("b/s.yaml"), format!("reviews: {{timeout: 2s, {own}}}\n")).unwrap();
    let (a, b) = (p(&dir.join("a/p.canary")), p(&dir.join("b/p.canary")));
    let out = canaryc(&["diff", &a, &b]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("reviews: mirror: 10% to v3 → 20% to v3"), "{text}");
    assert!(text.contains("reviews: timeout: \"1s\" → \"2s\""), "{text}");
    // The rule's own mirror, and the service's timeout it inherits.
    assert!(text.contains("reviews: rule on line 4: mirror: 5% to v1 → 7.5% to v1"), "{text}");
    assert!(text.contains("reviews: rule on line 4: timeout: \"1s\" → \"2s\""), "{text}");
    assert_eq!(canaryc(&["diff", &a, &b, "--exit-code"]).status.code(), Some(1));
    assert_eq!(canaryc(&["diff", &a, &a, "--exit-code"]).status.code(), Some(0));
}

/// Imports routes with different settings (`first` on the `jason` route, `last` on the catch-all) and checks
/// that `manifest --kind istio-routes --backend native` gives each route its own settings back and decides as
/// the routes without settings do. Returns the policy text.
fn round_trip_per_route(first: &Value, last: &Value, last_subset: &str, name: &str, crds: &mut Crds) -> String {
    let dir = tmp(name);
    let (vs, policy, file) = (dir.join("vs.yaml"), dir.join("reviews.canary"), dir.join("reviews.routes.yaml"));
    std::fs::write(&vs, virtual_service_per_route(first, last, last_subset)).unwrap();
    let _ = std::fs::remove_file(&file);
    let text = ok(canaryc(&["import", &p(&vs), "--settings-out", &p(&file)]), &format!("import {name}"));
    let text = text.replace(&format!("settings \"{}\"", p(&file)), "settings \"reviews.routes.yaml\"");
    std::fs::write(&policy, &text).unwrap();
    std::fs::write(dir.join("bare.yaml"), virtual_service_per_route(&json!({}), &json!({}), last_subset)).unwrap();
    std::fs::write(dir.join("bare.canary"), ok(canaryc(&["import", &p(&dir.join("bare.yaml"))]), "import bare"))
        .unwrap();
    assert_eq!(
        compiled_without_lines(&policy),
        compiled_without_lines(&dir.join("bare.canary")),
        "{name}: the settings changed a decision"
    );
    let want = |s: &Value| {
        let mut w = settings_of(s);
        if let Some(t) = w.get_mut("retries").and_then(|r| r.get_mut("attempts")) {
            *t = json!(t.as_u64());
        }
        w
    };
    let yaml = ok(canaryc(&["manifest", &p(&policy), "--kind", "istio-routes", "--backend", "native"]), "manifest");
    let docs = documents(&yaml);
    for doc in &docs {
        let errors = crds.errors(doc);
        assert!(errors.is_empty(), "{name}: {errors:#?}\n{doc:#}");
    }
    let vs = docs.iter().find(|d| d["kind"] == "VirtualService").expect("a VirtualService");
    let routes = vs["spec"]["http"].as_array().expect("http routes");
    assert!(routes.len() >= 2, "{name}: {vs:#}");
    for route in routes {
        let jason = route["match"].to_string().contains("jason");
        let expected = if jason { want(first) } else { want(last) };
        assert_eq!(settings_of(route), expected, "{name}: route {} (jason: {jason})\n{text}", route["name"]);
    }
    text
}

#[test]
fn routes_with_different_settings_import_as_profiles() {
    let mut crds = Crds::default();
    // The example: http[0] with a timeout and retries, matching a header, to v2; http[1], the default
    // route to v1, with a mirror. The jason route's profile unsets the service's mirror.
    let mirror = json!({ "mirror": { "host": "reviews", "subset": "v3" }, "mirrorPercentage": { "value": 10.0 } });
    let first = json!({ "timeout": "0.5s", "retries": { "attempts": 3, "perTryTimeout": "0.2s" } });
    let text = round_trip_per_route(&first, &mirror, "v1", "issue", &mut crds);
    assert!(text.contains("-> v2 with route-0\n"), "{text}");
    assert!(text.contains("  mirror 10% to v3\n"), "{text}");
    let settings = std::fs::read_to_string(tmp("issue").join("reviews.routes.yaml")).unwrap();
    assert_eq!(
        settings,
        "\"reviews\": {\"profiles\":{\"route-0\":{\"retries\":{\"attempts\":3,\"perTryTimeout\":\"0.2s\"},\
         \"timeout\":\"0.5s\",\"unset\":[\"mirror\"]}}}\n"
    );
    // Each route its own mirror, and a route lacking the catch-all's timeout.
    let own_mirror = json!({ "mirror": { "host": "reviews", "subset": "v2" }, "mirrorPercentage": { "value": 2.5 } });
    let mut last = mirror.clone();
    last["timeout"] = json!("3s");
    let text = round_trip_per_route(&own_mirror, &last, "v1", "issue-mirrors", &mut crds);
    assert!(text.contains("-> v2 with route-0\n") && text.contains("  mirror 10% to v3\n"), "{text}");
    // Without a mirror, and the route's own name as the profile's.
    let mut text_vs = virtual_service_per_route(&json!({ "timeout": "2s" }), &json!({}), "v1");
    text_vs = text_vs.replacen("- match:", "- name: jason-route\n    match:", 1);
    let dir = tmp("named");
    std::fs::write(dir.join("vs.yaml"), &text_vs).unwrap();
    let out = canaryc(&["import", &p(&dir.join("vs.yaml")), "--settings-out", &p(&dir.join("s.yaml"))]);
    let policy = ok(out, &format!("import named\n{text_vs}"));
    assert!(policy.contains("-> v2 with jason-route\n"), "{policy}\n{text_vs}");
    let settings = std::fs::read_to_string(dir.join("s.yaml")).unwrap();
    assert_eq!(settings, "\"reviews\": {\"profiles\":{\"jason-route\":{\"timeout\":\"2s\"}}}\n");
    // Generated: the catch-all carries one combination, the jason route another, each whole (fields the
    // catch-all has and the route lacks are unset), mirrors to different subsets on odd pairs.
    let all = generated();
    let mut with_profiles = 0;
    for (i, own) in all.iter().enumerate() {
        let last = &all[(i * 7 + 3) % all.len()];
        let mut first = own.clone();
        if i % 2 == 1 {
            if let Some(m) = first.get_mut("mirror") {
                m["subset"] = json!("v2");
            }
        }
        let text = round_trip_per_route(&first, last, "v3", &format!("per-route{i}"), &mut crds);
        with_profiles += usize::from(text.contains(" with route-0\n"));
    }
    assert!(with_profiles >= 60, "only {with_profiles} of 64 generated pairs differ");
}

/// `canaryc compile FILE` with every rule's line set to 0: two policies that differ only in where their rules
/// sit (a `settings` line moves them) compare equal.
fn compiled_without_lines(f: &Path) -> Value {
    let mut config: Value = serde_json::from_str(&ok(canaryc(&["compile", &p(f)]), "compile")).expect("JSON");
    for svc in config["services"].as_array_mut().into_iter().flatten() {
        for rule in svc["rules"].as_array_mut().into_iter().flatten() {
            rule["line"] = json!(0);
        }
    }
    config
}

#[test]
fn check_reads_the_settings_file() {
    let dir = tmp("check");
    let policy = dir.join("p.canary");
    std::fs::write(
        &policy,
        "settings \"s.yaml\"\nservice web {\n  header a present -> v2 with slow\n  default v1\n}\n",
    )
    .unwrap();
    let check = || {
        let out = canaryc(&["check", &p(&policy)]);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    // A bad settings file: its error at FILE:LINE:COL, the line shown.
    std::fs::write(dir.join("s.yaml"), "web:\n  profiles:\n    slow: {timeout: 2 s}\n").unwrap();
    let (code, stderr) = check();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("s.yaml:3:21: error: `timeout`: `2 s` is not a duration"), "{stderr}");
    assert!(stderr.contains("slow: {timeout: 2 s}"), "{stderr}");
    // An unknown profile: at the policy's `with NAME`.
    std::fs::write(dir.join("s.yaml"), "web:\n  profiles:\n    patient: {timeout: 2s}\n").unwrap();
    let (code, stderr) = check();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("p.canary:3:31: error: unknown settings profile `slow` for service `web`"), "{stderr}");
    // A section no service uses: a warning, counted.
    std::fs::write(dir.join("s.yaml"), "web:\n  profiles:\n    slow: {timeout: 2s}\nweb2: {timeout: 1s}\n").unwrap();
    let (code, stderr) = check();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(stderr.contains("section `web2`: the policy routes no service `web2`"), "{stderr}");
    assert!(stderr.contains("p.canary: 1 warning(s)"), "{stderr}");
    // A missing file: at the policy's `settings`.
    std::fs::remove_file(dir.join("s.yaml")).unwrap();
    let (code, stderr) = check();
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("p.canary:1:10: error: cannot read the settings file"), "{stderr}");
}
