//! The plugin configuration JSON decoded into [`canary_eval::Config`] without serde.
//!
//! Why not `serde_json`: its derive-generated visitors, `flatten` buffering and float formatting were
//! ~130 KB of the module before wasm-opt (this decoder: ~20 KB). It accepts exactly the documents serde
//! accepts for `Config` (same field names, defaults, externally tagged enums, `deny_unknown_fields`,
//! duplicate-field errors) — the differential tests below compare both on valid, invalid and every
//! compiled example document — and its errors name the place (`services[0].rules[1].when: unknown
//! variant "foo"`). Every struct is built with a full literal and every enum matched exhaustively, so a
//! field or variant added to the config model fails this crate's build until it is decoded here too.
use canary_eval::config::Test;
use canary_eval::config::{Action, Cond, Config, Protocol, Rule, RuleSet, Service, Settings, Share, Split, StickyKey};
use canary_eval::quoted;

/// Nesting limit (serde_json's is 128 too): bounds recursion on hostile input.
const MAX_DEPTH: u32 = 128;

pub fn decode(bytes: &[u8]) -> Result<Config, String> {
    let value = Parser { s: bytes, i: 0, depth: 0 }.document()?;
    config(value)
}

#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    /// Non-negative integers; `None` for any other number (fraction, exponent, sign, overflow).
    Num(Option<u64>),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: u32,
}

impl Parser<'_> {
    fn document(mut self) -> Result<Json, String> {
        let v = self.value()?;
        self.ws();
        if self.i < self.s.len() {
            return Err(self.err("trailing characters"));
        }
        Ok(v)
    }

    fn err(&self, what: &str) -> String {
        format!("config is not valid JSON: {what} at byte {}", self.i)
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, b: u8) -> bool {
        self.ws();
        let hit = self.s.get(self.i) == Some(&b);
        self.i += usize::from(hit);
        hit
    }

    fn literal(&mut self, word: &[u8], v: Json) -> Result<Json, String> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            Ok(v)
        } else {
            Err(self.err("expected a value"))
        }
    }

    fn value(&mut self) -> Result<Json, String> {
        self.ws();
        match self.s.get(self.i) {
            None => Err(self.err("unexpected end")),
            Some(b'n') => self.literal(b"null", Json::Null),
            Some(b't') => self.literal(b"true", Json::Bool(true)),
            Some(b'f') => self.literal(b"false", Json::Bool(false)),
            Some(b'"') => self.string().map(Json::Str),
            Some(b'[' | b'{') => {
                self.depth += 1;
                if self.depth > MAX_DEPTH {
                    return Err(self.err("nesting too deep"));
                }
                let v = if self.s[self.i] == b'[' { self.array() } else { self.object() };
                self.depth -= 1;
                v
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err("expected a value")),
        }
    }

    fn array(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut items = Vec::new();
        if self.eat(b']') {
            return Ok(Json::Arr(items));
        }
        loop {
            items.push(self.value()?);
            if self.eat(b']') {
                return Ok(Json::Arr(items));
            }
            if !self.eat(b',') {
                return Err(self.err("expected `,` or `]`"));
            }
        }
    }

    fn object(&mut self) -> Result<Json, String> {
        self.i += 1;
        let mut fields = Vec::new();
        if self.eat(b'}') {
            return Ok(Json::Obj(fields));
        }
        loop {
            self.ws();
            if self.s.get(self.i) != Some(&b'"') {
                return Err(self.err("expected a field name"));
            }
            let key = self.string()?;
            if !self.eat(b':') {
                return Err(self.err("expected `:`"));
            }
            fields.push((key, self.value()?));
            if self.eat(b'}') {
                return Ok(Json::Obj(fields));
            }
            if !self.eat(b',') {
                return Err(self.err("expected `,` or `}`"));
            }
        }
    }

    /// RFC 8259 number grammar; only plain non-negative integers keep their value.
    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let negative = self.s[self.i] == b'-';
        self.i += usize::from(negative);
        let int_start = self.i;
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - from
        };
        let int_len = digits(self);
        if int_len == 0 || (int_len > 1 && self.s[int_start] == b'0') {
            return Err(self.err("invalid number"));
        }
        let mut integer = !negative;
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            integer = false;
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            integer = false;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                return Err(self.err("invalid number"));
            }
        }
        let value = integer
            .then(|| {
                self.s[start..self.i].iter().try_fold(0u64, |n, d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
            })
            .flatten();
        Ok(Json::Num(value))
    }

    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.err("unterminated string"));
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.err("unterminated string"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' | b'\\' | b'/' => e as char,
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.err("invalid escape")),
                    };
                    let mut buf = [0; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                0..=0x1f => return Err(self.err("control character in string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.err("invalid UTF-8 in string"))
    }

    /// `\uXXXX`, combining a UTF-16 surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, String> {
        let hi = self.hex4()?;
        let code = if (0xd800..0xdc00).contains(&hi) {
            if !self.s[self.i..].starts_with(b"\\u") {
                return Err(self.err("lone surrogate"));
            }
            self.i += 2;
            let lo = self.hex4()?;
            if !(0xdc00..0xe000).contains(&lo) {
                return Err(self.err("lone surrogate"));
            }
            0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00)
        } else {
            hi
        };
        char::from_u32(code).ok_or_else(|| self.err("lone surrogate"))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let hex = self.s.get(self.i..self.i + 4).ok_or_else(|| self.err("invalid \\u escape"))?;
        let mut n = 0;
        for &h in hex {
            let d = (h as char).to_digit(16).ok_or_else(|| self.err("invalid \\u escape"))?;
            n = n * 16 + d;
        }
        self.i += 4;
        Ok(n)
    }
}

/// An object's fields being consumed; leftovers are unknown fields (every config struct denies them).
/// The accessors are deliberately non-generic over closures: each monomorphized copy costs module size.
struct Fields {
    at: String,
    fields: Vec<(String, Json)>,
}

impl Fields {
    fn new(v: Json, at: &str) -> Result<Fields, String> {
        let Json::Obj(fields) = v else {
            return Err(format!("{}: expected an object", name(at)));
        };
        for (i, (k, _)) in fields.iter().enumerate() {
            if fields[..i].iter().any(|(seen, _)| seen == k) {
                return Err(format!("{}: duplicate field {}", name(at), quoted(k)));
            }
        }
        Ok(Fields { at: at.to_string(), fields })
    }

    /// A field's value and its path, removed from the leftovers.
    fn take(&mut self, key: &str) -> Option<(Json, String)> {
        let i = self.fields.iter().position(|(k, _)| k == key)?;
        let (_, v) = self.fields.remove(i);
        Some((v, join(&self.at, key)))
    }

    fn required(&mut self, key: &str) -> Result<(Json, String), String> {
        self.take(key).ok_or_else(|| format!("{}: missing field {}", name(&self.at), quoted(key)))
    }

    fn string(&mut self, key: &str) -> Result<String, String> {
        let (v, at) = self.required(key)?;
        string(v, &at)
    }

    fn u32(&mut self, key: &str) -> Result<u32, String> {
        let (v, at) = self.required(key)?;
        match v {
            Json::Num(Some(n)) if n <= u64::from(u32::MAX) => Ok(n as u32),
            _ => Err(format!("{at}: expected an unsigned 32-bit integer")),
        }
    }

    /// `Option<String>` with `#[serde(default)]`: absent or `null` is `None`.
    fn opt_string(&mut self, key: &str) -> Result<Option<String>, String> {
        match self.take(key) {
            None | Some((Json::Null, _)) => Ok(None),
            Some((v, at)) => string(v, &at).map(Some),
        }
    }

    /// A `Vec` field; absent is empty unless `required`.
    fn list<T>(&mut self, key: &str, required: bool, f: fn(Json, &str) -> Result<T, String>) -> Result<Vec<T>, String> {
        let (v, at) = match self.take(key) {
            Some(field) => field,
            None if required => return Err(format!("{}: missing field {}", name(&self.at), quoted(key))),
            None => return Ok(Vec::new()),
        };
        list(v, &at, f)
    }

    fn finish(self) -> Result<(), String> {
        match self.fields.first() {
            Some((k, _)) => Err(format!("{}: unknown field {}", name(&self.at), quoted(k))),
            None => Ok(()),
        }
    }
}

fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

fn name(at: &str) -> &str {
    if at.is_empty() {
        "config"
    } else {
        at
    }
}

fn string(v: Json, at: &str) -> Result<String, String> {
    match v {
        Json::Str(s) => Ok(s),
        _ => Err(format!("{}: expected a string", name(at))),
    }
}

/// A plain loop over a function pointer: iterator adapters monomorphized per element type cost kilobytes.
fn list<T>(v: Json, at: &str, f: fn(Json, &str) -> Result<T, String>) -> Result<Vec<T>, String> {
    let Json::Arr(items) = v else {
        return Err(format!("{}: expected an array", name(at)));
    };
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        out.push(f(item, &format!("{at}[{i}]"))?);
    }
    Ok(out)
}

/// An externally tagged enum value: `{"variant": payload}`, or `"variant"` for a unit variant (payload
/// `null`). Returns the tag, the payload and the payload's path.
fn variant(v: Json, at: &str) -> Result<(String, Json, String), String> {
    let (tag, payload) = match v {
        Json::Str(s) => (s, Json::Null),
        Json::Obj(mut fields) if fields.len() == 1 => fields.pop().unwrap_or((String::new(), Json::Null)),
        _ => return Err(format!("{}: expected an object with exactly one key", name(at))),
    };
    let inner = join(at, &tag);
    Ok((tag, payload, inner))
}

fn unknown_variant<T>(at: &str, v: &str) -> Result<T, String> {
    Err(format!("{}: unknown variant {}", name(at), quoted(v)))
}

fn config(v: Json) -> Result<Config, String> {
    let mut f = Fields::new(v, "")?;
    let config = Config {
        version: f.u32("version")?,
        global: match f.take("global") {
            Some((v, at)) => rule_set(Fields::new(v, &at)?)?,
            None => RuleSet::default(),
        },
        services: f.list("services", false, service)?,
        settings: match f.take("settings") {
            Some((v, at)) => settings(v, &at)?,
            None => Settings::default(),
        },
    };
    f.finish()?;
    Ok(config)
}

fn settings(v: Json, at: &str) -> Result<Settings, String> {
    let mut f = Fields::new(v, at)?;
    let settings = Settings {
        service: f.opt_string("service")?,
        header: f.opt_string("header")?,
        trust_incoming: match f.take("trust_incoming") {
            None => false,
            Some((Json::Bool(b), _)) => b,
            Some((_, at)) => return Err(format!("{at}: expected a boolean")),
        },
        cluster: f.opt_string("cluster")?,
        access_log: match f.take("access_log") {
            None => false,
            Some((Json::Bool(b), _)) => b,
            Some((_, at)) => return Err(format!("{at}: expected a boolean")),
        },
    };
    f.finish()?;
    Ok(settings)
}

/// A rule set, also as the flattened part of a service: consumes its fields and checks for leftovers.
fn rule_set(mut f: Fields) -> Result<RuleSet, String> {
    let set = RuleSet { rules: f.list("rules", false, rule)?, default: f.opt_string("default")? };
    f.finish()?;
    Ok(set)
}

fn service(v: Json, at: &str) -> Result<Service, String> {
    let mut f = Fields::new(v, at)?;
    let name = f.string("name")?;
    let protocol = match f.take("protocol") {
        None => Protocol::Http,
        Some((v, at)) => match string(v, &at)?.as_str() {
            "http" => Protocol::Http,
            "tcp" => Protocol::Tcp,
            other => return unknown_variant(&at, other),
        },
    };
    Ok(Service { name, protocol, rules: rule_set(f)? })
}

fn rule(v: Json, at: &str) -> Result<Rule, String> {
    let mut f = Fields::new(v, at)?;
    let line = f.u32("line")?;
    let when = match f.take("when") {
        None | Some((Json::Null, _)) => None,
        Some((v, at)) => Some(cond(v, &at)?),
    };
    let (v, then_at) = f.required("then")?;
    let rule = Rule { line, when, then: action(v, &then_at)? };
    f.finish()?;
    Ok(rule)
}

fn action(v: Json, at: &str) -> Result<Action, String> {
    let (tag, v, inner) = variant(v, at)?;
    Ok(match tag.as_str() {
        "route" => Action::Route(string(v, &inner)?),
        "split" => {
            let mut f = Fields::new(v, &inner)?;
            let split = Split {
                to: f.list("to", true, share)?,
                by: match f.take("by") {
                    None | Some((Json::Null, _)) => None,
                    Some((v, at)) => Some(sticky_key(v, &at)?),
                },
            };
            f.finish()?;
            Action::Split(split)
        }
        other => return unknown_variant(at, other),
    })
}

fn share(v: Json, at: &str) -> Result<Share, String> {
    let mut f = Fields::new(v, at)?;
    let share = Share { subset: f.string("subset")?, weight: f.u32("weight")? };
    f.finish()?;
    Ok(share)
}

fn sticky_key(v: Json, at: &str) -> Result<StickyKey, String> {
    let (tag, v, inner) = variant(v, at)?;
    match tag.as_str() {
        "cookie" => Ok(StickyKey::Cookie(string(v, &inner)?)),
        "header" => Ok(StickyKey::Header(string(v, &inner)?)),
        other => unknown_variant(at, other),
    }
}

fn cond(v: Json, at: &str) -> Result<Cond, String> {
    let (tag, v, inner) = variant(v, at)?;
    let tag = tag.as_str();
    if let "header" | "cookie" | "query" | "source" = tag {
        let mut f = Fields::new(v, &inner)?;
        let c = match tag {
            "header" => {
                let name = f.string("name")?;
                let (v, at) = f.required("test")?;
                Cond::Header { name, test: test(v, &at)? }
            }
            "cookie" => Cond::Cookie { name: f.string("name")?, value: f.string("value")? },
            "query" => Cond::Query { name: f.string("name")?, value: f.string("value")? },
            _ => Cond::Source { label: f.string("label")?, value: f.string("value")? },
        };
        f.finish()?;
        return Ok(c);
    }
    Ok(match tag {
        "path_prefix" => Cond::PathPrefix(string(v, &inner)?),
        "method" => Cond::Method(string(v, &inner)?),
        "host" => Cond::Host(string(v, &inner)?),
        "all" => Cond::All(list(v, &inner, cond)?),
        "any" => Cond::Any(list(v, &inner, cond)?),
        "not" => Cond::Not(Box::new(cond(v, &inner)?)),
        other => return unknown_variant(at, other),
    })
}

fn test(v: Json, at: &str) -> Result<Test, String> {
    let (tag, v, inner) = variant(v, at)?;
    let unit = |t: Test| match v {
        Json::Null => Ok(t),
        _ => Err(format!("{inner}: expected no value")),
    };
    match tag.as_str() {
        "eq" => Ok(Test::Eq(string(v, &inner)?)),
        "ne" => Ok(Test::Ne(string(v, &inner)?)),
        "regex" => Ok(Test::Regex(string(v, &inner)?)),
        "in" => Ok(Test::In(list(v, &inner, string)?)),
        "present" => unit(Test::Present),
        "absent" => unit(Test::Absent),
        other => unknown_variant(at, other),
    }
}

/// Compile-time tripwire: adding a variant to one of these enums breaks this match, reminding whoever
/// does it to decode the new variant above.
#[allow(dead_code)]
fn exhaustive(c: &Cond, t: &Test, a: &Action, k: &StickyKey, p: Protocol) {
    match c {
        Cond::Header { .. }
        | Cond::Cookie { .. }
        | Cond::Query { .. }
        | Cond::PathPrefix(_)
        | Cond::Method(_)
        | Cond::Host(_)
        | Cond::Source { .. }
        | Cond::All(_)
        | Cond::Any(_)
        | Cond::Not(_) => {}
    }
    match t {
        Test::Eq(_) | Test::Ne(_) | Test::Regex(_) | Test::In(_) | Test::Present | Test::Absent => {}
    }
    match a {
        Action::Route(_) | Action::Split(_) => {}
    }
    match k {
        StickyKey::Cookie(_) | StickyKey::Header(_) => {}
    }
    match p {
        Protocol::Http | Protocol::Tcp => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both decoders on one document: equal configs, or both refuse.
    fn same_as_serde(doc: &str) -> Result<Config, String> {
        let ours = decode(doc.as_bytes());
        let serde = serde_json::from_str::<Config>(doc).map_err(|e| e.to_string());
        match (&ours, &serde) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{doc}"),
            (Err(_), Err(_)) => {}
            _ => panic!("decoders disagree on {doc}:\n ours:  {ours:?}\n serde: {serde:?}"),
        }
        ours
    }

    const FULL: &str = r#"{
      "version": 1,
      "global": {"rules": [{"line": 1, "when": {"header": {"name": "x-debug", "test": "present"}}, "then": {"route": "v2"}}]},
      "services": [
        {"name": "frontend", "rules": [
            {"line": 3, "when": {"cookie": {"name": "user", "value": "tester"}}, "then": {"route": "v2"}},
            {"line": 4, "when": {"header": {"name": "user-agent", "test": {"regex": "Android"}}},
             "then": {"split": {"to": [{"subset": "v2", "weight": 5000}], "by": {"cookie": "user"}}}},
            {"line": 5, "when": {"all": [{"query": {"name": "q", "value": "a b"}}, {"not": {"method": "GET"}},
                                        {"any": [{"host": "h"}, {"path_prefix": "/api"}]}]}, "then": {"route": "v3"}},
            {"line": 6, "when": {"header": {"name": "x", "test": {"in": ["a", "\u00e9\ud83d\ude00\n"]}}}, "then": {"route": "v2"}},
            {"line": 7, "when": {"header": {"name": "x", "test": {"ne": "a"}}}, "then": {"split": {"to": []}}},
            {"line": 8, "when": {"header": {"name": "x", "test": {"absent": null}}}, "then": {"route": "v1"}}
          ], "default": "v1"},
        {"name": "tcp-echo", "protocol": "tcp", "rules": [{"line": 9, "when": {"source": {"label": "version", "value": "v2"}},
          "then": {"split": {"to": [{"subset": "v2", "weight": 2000}], "by": null}}}], "default": null}
      ],
      "settings": {"service": "frontend", "header": "x-v", "trust_incoming": true, "cluster": "{service}-{subset}",
                   "access_log": true}
    }"#;

    #[test]
    fn decodes_every_form_like_serde() {
        let config = same_as_serde(FULL).unwrap();
        assert_eq!(config.services.len(), 2);
        // And what serde itself prints reads back identically.
        same_as_serde(&serde_json::to_string(&config).unwrap()).unwrap();
        same_as_serde(&serde_json::to_string_pretty(&config).unwrap()).unwrap();
        same_as_serde(r#"{"version":1}"#).unwrap();
        same_as_serde(r#" {"version":1 , "settings":{}, "global":{}, "services":[]} "#).unwrap();
    }

    /// Every compiled example in the repository (what `canaryc compile` prints) decodes like serde.
    #[test]
    fn decodes_the_compiled_examples() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/golden");
        let mut seen = 0;
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "json") {
                let doc = std::fs::read_to_string(entry.path()).unwrap();
                same_as_serde(&doc).unwrap_or_else(|e| panic!("{}: {e}", entry.path().display()));
                seen += 1;
            }
        }
        assert!(seen > 0, "no compiled examples under {}", dir.display());
    }

    #[test]
    fn refuses_what_serde_refuses() {
        for doc in [
            "",
            "null",
            "[]",
            r#"{}"#,
            r#"{"version":1,"extra":1}"#,
            r#"{"version":1,"version":1}"#,
            r#"{"version":-1}"#,
            r#"{"version":1.5}"#,
            r#"{"version":1e0}"#,
            r#"{"version":4294967296}"#,
            r#"{"version":"1"}"#,
            r#"{"version":01}"#,
            r#"{"version":1} x"#,
            r#"{"version":1,}"#,
            r#"{"version":1,"services":[{"name":"a","bogus":1}]}"#,
            r#"{"version":1,"services":[{"name":"a","protocol":"udp"}]}"#,
            r#"{"version":1,"services":[{"rules":[]}]}"#,
            r#"{"version":1,"global":{"rules":[{"line":1,"then":{"route":"v2","split":{}}}]}}"#,
            r#"{"version":1,"global":{"rules":[{"line":1,"then":{"teleport":"v2"}}]}}"#,
            r#"{"version":1,"global":{"rules":[{"line":1,"then":"route"}]}}"#,
            r#"{"version":1,"global":{"rules":[{"line":1,"when":{"header":{"name":"x","test":{"present":1}}},"then":{"route":"v"}}]}}"#,
            r#"{"version":1,"global":{"rules":[{"line":1,"when":{"cookie":{"name":"x"}},"then":{"route":"v"}}]}}"#,
            r#"{"version":1,"global":{"rules":[{"line":1,"when":{"cookie":{"name":"x","value":"y","z":1}},"then":{"route":"v"}}]}}"#,
            r#"{"version":1,"settings":{"trust_incoming":"yes"}}"#,
            r#"{"version":1,"settings":{"access_log":1}}"#,
            r#"{"version":1,"settings":{"header":"\x"}}"#,
            r#"{"version":1,"settings":{"header":"\ud800"}}"#,
            "{\"version\":1,\"settings\":{\"header\":\"a\u{1}\"}}",
            r#"{"version":1,"global":{"default":["v1"]}}"#,
            r#"{"version":1,"services":[{"name":"a","rules":[],"rules":[]}]}"#,
            r#"{"version":1,"services":[{"name":"a","name":"b"}]}"#,
            r#"{"version":1,"services":[{"name":"a","default":"v1","default":"v2"}]}"#,
        ] {
            assert!(same_as_serde(doc).is_err(), "accepted {doc}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(decode(deep.as_bytes()).unwrap_err().contains("nesting too deep"));
        assert!(decode(b"{\"version\":1,\"settings\":{\"header\":\"\xff\"}}").is_err());
    }

    #[test]
    fn errors_name_the_place() {
        let err = |doc: &str| decode(doc.as_bytes()).unwrap_err();
        assert_eq!(
            err(
                r#"{"version":1,"services":[{"name":"a","rules":[{"line":1,"when":{"magic":1},"then":{"route":"v"}}]}]}"#
            ),
            r#"services[0].rules[0].when: unknown variant "magic""#
        );
        assert_eq!(
            err(r#"{"version":1,"services":[{"name":"a","colour":1}]}"#),
            r#"services[0]: unknown field "colour""#
        );
        assert_eq!(err(r#"{"services":[]}"#), r#"config: missing field "version""#);
        assert_eq!(err(r#"{"version":1,"version":1}"#), r#"config: duplicate field "version""#);
        assert_eq!(err(r#"{"version":true}"#), "version: expected an unsigned 32-bit integer");
        assert!(err("{\"version\":1").starts_with("config is not valid JSON: expected `,` or `}` at byte 12"));
    }
}
