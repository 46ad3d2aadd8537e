//! The Prometheus text exposition format as Envoy's admin `/stats/prometheus` writes it: one sample per line,
//! `name{label="value",…} value`, comments skipped, label values unescaped (`\\`, `\"`, `\n`).

use std::collections::BTreeMap;

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels.get(name).map(String::as_str)
    }
}

/// Parses a whole page; the error names the first bad line.
pub fn parse(text: &str) -> Result<Vec<Sample>, String> {
    text.lines()
        .enumerate()
        .map(|(n, line)| (n, line.trim()))
        .filter(|(_, line)| !line.is_empty() && !line.starts_with('#'))
        .map(|(n, line)| sample(line).map_err(|e| format!("line {}: {e}: {line}", n + 1)))
        .collect()
}

fn sample(line: &str) -> Result<Sample, String> {
    let name_end = line.find(['{', ' ', '\t']).ok_or("no value")?;
    let (name, mut rest) = line.split_at(name_end);
    let mut labels = BTreeMap::new();
    if let Some(body) = rest.strip_prefix('{') {
        rest = parse_labels(body, &mut labels)?;
    }
    // A timestamp may follow the value; Envoy writes none.
    let value = rest.split_whitespace().next().ok_or("no value")?;
    let value = parse_value(value).ok_or_else(|| format!("bad value `{value}`"))?;
    Ok(Sample { name: name.to_string(), labels, value })
}

/// Reads `label="value",…}` and returns what follows the `}`.
fn parse_labels<'a>(mut body: &'a str, labels: &mut BTreeMap<String, String>) -> Result<&'a str, String> {
    loop {
        body = body.trim_start_matches([' ', ',']);
        if let Some(rest) = body.strip_prefix('}') {
            return Ok(rest);
        }
        let eq = body.find('=').ok_or("label without `=`")?;
        let label = body[..eq].trim().to_string();
        let quoted =
            body[eq + 1..].trim_start().strip_prefix('"').ok_or_else(|| format!("label {label}: value not quoted"))?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => return Err(format!("label {label}: unterminated value")),
                },
                Some((_, c)) => value.push(c),
                None => return Err(format!("label {label}: unterminated value")),
            }
        };
        labels.insert(label, value);
        body = &quoted[end + 1..];
    }
}

/// Go's float syntax as Prometheus writes it, including `+Inf`, `-Inf` and `NaN`.
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// A counter's value as a count: finite, not negative, integral (rounded: Envoy and Prometheus write counts as
/// floats).
pub fn as_count(value: f64) -> Option<u64> {
    (value.is_finite() && value >= 0.0 && value < u64::MAX as f64).then(|| value.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escapes_empty_labels_and_special_values() {
        let text = "# TYPE x counter\n\
                    x{a=\"q\\\"\\\\,}\",b=\"\"} 2\n\
                    envoy_server_uptime{} 11\n\
                    y 7 1700000000\n\
                    h_bucket{le=\"+Inf\"} 5\n";
        let s = parse(text).unwrap();
        assert_eq!(s.len(), 4);
        assert_eq!(s[0].label("a"), Some("q\"\\,}"));
        assert_eq!(s[0].label("b"), Some(""));
        assert_eq!((s[1].name.as_str(), s[1].value), ("envoy_server_uptime", 11.0));
        assert_eq!(s[2].value, 7.0);
        assert_eq!(s[3].label("le"), Some("+Inf"));
        assert!(parse("x{a=b} 1").unwrap_err().contains("line 1"));
        assert!(parse("x{a=\"b} 1").is_err());
        assert!(parse("x{a=\"b\"} one").is_err());
        assert_eq!((as_count(3.0), as_count(-1.0), as_count(f64::NAN)), (Some(3), None, None));
    }
}
