//! Configuration bytes → the evaluator's `Config`/`Policy::new`, and the filter's own decoding.

use canary_eval::config::Config;
use canary_eval::Policy;
use canary_filter::Filter;

/// Loads `json` as the evaluator does (serde into the shared `Config`, then `Policy::new`) and as the filter
/// does (`Filter::new`): neither panics, both accept or both refuse, and a refusal's byte positions lie
/// inside the input. A config that loads is also serialized back and must load again (what the control
/// plane would push after a round trip).
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
            for pos in byte_positions(&reason) {
                if pos > json.len() {
                    return Err(format!("the filter names byte {pos} of {} bytes: {reason}", json.len()));
                }
            }
            Ok(())
        }
        (Ok(_), Err(reason)) => Err(format!("only the filter refused: {reason}")),
        (Err(e), Ok(_)) => Err(format!("only the evaluator refused: {e}")),
    }
}

/// Every `byte N` / `offset N` a message mentions.
fn byte_positions(message: &str) -> Vec<usize> {
    let words: Vec<&str> = message.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == "byte" || w[0] == "offset")
        .filter_map(|w| w[1].trim_end_matches(|c: char| !c.is_ascii_digit()).parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_and_invalid_configs_agree() {
        assert_eq!(check_config(br#"{"version":1,"global":{"default":"v1"}}"#), Ok(()));
        assert_eq!(check_config(br#"{"version":2}"#), Ok(()));
        assert_eq!(check_config(b"{\"version\":1,"), Ok(()));
    }

    #[test]
    fn positions_are_read_from_messages() {
        assert_eq!(byte_positions("unexpected end at byte 14, offset 3."), vec![14, 3]);
    }
}
