//! Configuration bytes → the evaluator's `Config`/`Policy::new`, and the filter's own loading.

use canary_eval::config::Config;
use canary_eval::Policy;
use canary_filter::Filter;

/// Loads `json` as the evaluator does (serde into the shared `Config`, then `Policy::new`) and as the filter
/// does (`Filter::new`): neither panics, both accept or both refuse for the same reason, and a position a
/// refusal names (`at line L column C`) lies inside the input. A config that loads is also serialized back and
/// must load again (what the control plane would push after a round trip).
pub fn check_config(json: &[u8]) -> Result<(), String> {
    let reference = serde_json::from_slice::<Config>(json)
        .map_err(|e| e.to_string())
        .and_then(|config| Policy::new(&config).map(|_| config).map_err(|e| e.0));
    let filter = Filter::new(json, 0);
    match (reference, filter) {
        (Ok(config), Ok(_)) => {
            let again = serde_json::to_vec(&config).map_err(|e| format!("does not serialize back: {e}"))?;
            Policy::from_json(&again).map(drop).map_err(|e| format!("refused after a round trip: {e}"))
        }
        (Err(_), Err(reason)) => {
            let evaluator = Policy::from_json(json).err().map(|e| e.0).unwrap_or_default();
            if reason != evaluator {
                return Err(format!("the filter refuses for another reason: {reason:?} vs {evaluator:?}"));
            }
            if let Some((line, column)) = position(&reason) {
                // serde_json counts columns in bytes (the input need not be UTF-8 at all).
                let lines: Vec<&[u8]> = json.split(|&b| b == b'\n').collect();
                let inside = line >= 1 && line <= lines.len() && column <= lines[line - 1].len() + 1;
                if !inside {
                    return Err(format!("the refusal names line {line} column {column}, outside the input: {reason}"));
                }
            }
            Ok(())
        }
        (Ok(_), Err(reason)) => Err(format!("only the filter refused: {reason}")),
        (Err(e), Ok(_)) => Err(format!("only the evaluator refused: {e}")),
    }
}

/// The `at line L column C` serde_json appends to a message, if any.
fn position(message: &str) -> Option<(usize, usize)> {
    let rest = message.rsplit_once(" at line ")?.1;
    let (line, column) = rest.split_once(" column ")?;
    Some((line.parse().ok()?, column.trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_configs_agree() {
        assert_eq!(check_config(br#"{"version":1,"global":{"default":"v1"}}"#), Ok(()));
        assert_eq!(check_config(br#"{"version":2}"#), Ok(()));
        assert_eq!(check_config(b"{\"version\":1,"), Ok(()));
        // Refused at line 1 column 9: a column counts bytes, not characters (found by `make fuzz`).
        assert_eq!(check_config(b"\"\x8a\xd2\x89\xd2\xce\xa3\x8d\xf2"), Ok(()));
        assert_eq!(check_config("\"é€".as_bytes()), Ok(()));
    }

    #[test]
    fn positions_are_read_from_messages() {
        assert_eq!(position("config is not valid canary JSON: EOF while parsing at line 1 column 14"), Some((1, 14)));
        assert_eq!(position("service `a`: unknown subset"), None);
    }
}
