//! What a scalar means, by serde_yaml 0.9's rules (YAML 1.2's core schema, as serde_yaml read it), so that
//! switching readers changes no value: `null`/`~`/empty are null, `true`/`True`/`TRUE` booleans, decimal,
//! `0x`, `0o` and `0b` integers, `.inf`/`.nan` and decimal floats; everything else, and every quoted or block
//! scalar, a string. `yes`/`on` stay strings (YAML 1.1's booleans are not YAML 1.2's). One deliberate
//! difference: an integer beyond 64 bits is a float (serde_yaml refused the whole stream for one in i128).

use saphyr_parser::{ScalarStyle, Tag as ParsedTag};
use yaml_serde::value::{Tag, TaggedValue};
use yaml_serde::Value;

/// How a tag is read. Only `!local` tags survive as [`Value::Tagged`] (the importer refuses them by name);
/// core tags (`!!int`) decide the scalar's type; any other tag is dropped, as serde_yaml dropped it.
pub(crate) enum Tagging {
    None,
    Core(String),
    Local(String),
    Other,
}

impl Tagging {
    pub fn of(tag: Option<&ParsedTag>) -> Tagging {
        let Some(tag) = tag else { return Tagging::None };
        let full = format!("{}{}", tag.handle, tag.suffix);
        if let Some(core) = full.strip_prefix("tag:yaml.org,2002:") {
            return Tagging::Core(core.to_string());
        }
        match full.strip_prefix('!') {
            // `!` alone (the non-specific tag) keeps its bang: a tag is never empty.
            Some("") => Tagging::Local(full),
            Some(name) => Tagging::Local(name.to_string()),
            None => Tagging::Other,
        }
    }

    /// A list or mapping under this tag.
    pub fn wrap(self, value: Value) -> Value {
        match self {
            Tagging::Local(name) => Value::Tagged(Box::new(TaggedValue { tag: Tag::new(name), value })),
            _ => value,
        }
    }
}

/// A scalar's value; `Err` for a core tag its text does not fit (`!!int abc`).
pub(crate) fn value(text: &str, style: ScalarStyle, tagging: Tagging) -> Result<Value, String> {
    let plain = style == ScalarStyle::Plain;
    match tagging {
        Tagging::None if plain => Ok(untagged(text)),
        Tagging::None | Tagging::Other => Ok(Value::String(text.to_string())),
        Tagging::Local(name) => {
            let value = if plain { untagged(text) } else { Value::String(text.to_string()) };
            Ok(Value::Tagged(Box::new(TaggedValue { tag: Tag::new(name), value })))
        }
        Tagging::Core(core) => {
            let (parsed, what) = match core.as_str() {
                "bool" => (parse_bool(text).map(Value::Bool), "a boolean"),
                "int" => (parse_int(text), "an integer"),
                "float" => (parse_float(text).map(|f| Value::Number(f.into())), "a float"),
                "null" => (is_null(text).then_some(Value::Null), "null"),
                _ => return Ok(Value::String(text.to_string())),
            };
            parsed.ok_or_else(|| format!("!!{core} {} is not {what}", crate::path::quote(text)))
        }
    }
}

/// A plain scalar without a tag.
fn untagged(text: &str) -> Value {
    if text.is_empty() || is_null(text) {
        return Value::Null;
    }
    if let Some(b) = parse_bool(text) {
        return Value::Bool(b);
    }
    if let Some(n) = parse_int(text) {
        return n;
    }
    if !leading_zero_digits(text) {
        // Also the integers too wide for 64 bits: floats, as JSON decoders (and Kubernetes) read them.
        if let Some(f) = parse_float(text) {
            return Value::Number(f.into());
        }
    }
    Value::String(text.to_string())
}

fn is_null(text: &str) -> bool {
    matches!(text, "null" | "Null" | "NULL" | "~")
}

fn parse_bool(text: &str) -> Option<bool> {
    match text {
        "true" | "True" | "TRUE" => Some(true),
        "false" | "False" | "FALSE" => Some(false),
        _ => None,
    }
}

/// An integer that fits u64 or i64: decimal (no leading zeros), `0x`, `0o`, `0b`, with a sign.
fn parse_int(text: &str) -> Option<Value> {
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    // `from_str_radix` takes a sign of its own: a second one must not get through.
    if digits.starts_with(['+', '-']) {
        return None;
    }
    let (radix, body) = match digits.get(..2) {
        Some("0x") => (16, &digits[2..]),
        Some("0o") => (8, &digits[2..]),
        Some("0b") => (2, &digits[2..]),
        _ if leading_zero_digits(digits) => return None,
        _ => (10, digits),
    };
    if body.starts_with(['+', '-']) {
        return None;
    }
    if negative {
        i64::from_str_radix(&format!("-{body}"), radix).ok().map(Value::from)
    } else {
        u64::from_str_radix(body, radix).ok().map(Value::from)
    }
}

/// `012` is a string in YAML 1.2, not octal and not twelve.
fn leading_zero_digits(text: &str) -> bool {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    digits.len() > 1 && digits.starts_with('0') && digits[1..].bytes().all(|b| b.is_ascii_digit())
}

fn parse_float(text: &str) -> Option<f64> {
    let unsigned = match text.strip_prefix('+') {
        Some(rest) if rest.starts_with(['+', '-']) => return None,
        Some(rest) => rest,
        None => text,
    };
    if let ".inf" | ".Inf" | ".INF" = unsigned {
        return Some(f64::INFINITY);
    }
    if let "-.inf" | "-.Inf" | "-.INF" = text {
        return Some(f64::NEG_INFINITY);
    }
    if let ".nan" | ".NaN" | ".NAN" = text {
        return Some(f64::NAN);
    }
    // Rust also reads `inf`, `NaN` and `infinity`: YAML does not.
    unsigned.parse::<f64>().ok().filter(|f| f.is_finite())
}

#[cfg(test)]
fn number(value: &Value) -> Option<&yaml_serde::Number> {
    match value {
        Value::Number(n) => Some(n),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(text: &str) -> Value {
        value(text, ScalarStyle::Plain, Tagging::None).expect("plain scalars always read")
    }

    #[test]
    fn plain_scalars_read_as_serde_yaml_read_them() {
        for null in ["", "~", "null", "Null", "NULL"] {
            assert_eq!(plain(null), Value::Null, "{null:?}");
        }
        assert_eq!(plain("True"), Value::Bool(true));
        assert_eq!(plain("FALSE"), Value::Bool(false));
        for text in ["yes", "on", "nULL", "0x", "1_000", "inf", "NaN", "012", "-012", "+-1", "0x-1", "1e", "--1"] {
            assert_eq!(plain(text), Value::String(text.into()), "{text:?}");
        }
        assert_eq!(plain("0"), Value::from(0));
        assert_eq!(plain("-0"), Value::from(0));
        assert_eq!(plain("+7"), Value::from(7));
        assert_eq!(plain("-9223372036854775808"), Value::from(i64::MIN));
        assert_eq!(plain("18446744073709551615"), Value::from(u64::MAX));
        assert_eq!(plain("0x1F"), Value::from(31));
        assert_eq!(plain("-0o17"), Value::from(-15));
        assert_eq!(plain("0b101"), Value::from(5));
        assert_eq!(plain("0.5"), Value::from(0.5));
        assert_eq!(plain("1e3"), Value::from(1000.0));
        assert_eq!(plain("-.inf"), Value::from(f64::NEG_INFINITY));
        assert!(number(&plain(".nan")).is_some_and(yaml_serde::Number::is_nan));
        assert_eq!(plain("99999999999999999999"), Value::from(1e20));
    }

    #[test]
    fn quoted_and_block_scalars_are_strings() {
        for style in [ScalarStyle::SingleQuoted, ScalarStyle::DoubleQuoted, ScalarStyle::Literal, ScalarStyle::Folded] {
            assert_eq!(value("3", style, Tagging::None), Ok(Value::String("3".into())));
        }
    }

    #[test]
    fn core_tags_decide_and_local_tags_stay() {
        let core = |name: &str, text: &str| value(text, ScalarStyle::DoubleQuoted, Tagging::Core(name.into()));
        assert_eq!(core("int", "12"), Ok(Value::from(12)));
        assert_eq!(core("str", "12"), Ok(Value::String("12".into())));
        assert_eq!(core("bool", "true"), Ok(Value::Bool(true)));
        assert_eq!(core("int", "x"), Err("!!int \"x\" is not an integer".to_string()));
        let local = value("1", ScalarStyle::Plain, Tagging::Local("cookie".into())).expect("tagged");
        assert_eq!(local.to_owned(), Value::Tagged(Box::new(TaggedValue { tag: Tag::new("cookie"), value: 1.into() })));
    }
}
