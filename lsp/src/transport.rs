//! LSP's base protocol on a byte stream: `Content-Length: N` headers, a blank line, N bytes of JSON-RPC.
//!
//! Why not `lsp_server::Connection::stdio`: its reader thread stops at the first malformed message
//! (`Message::read` returns an I/O error), so the server would go silent. JSON-RPC asks for an error
//! response instead — `-32700` (parse error, `id: null`) for bytes that are not JSON, `-32600` (invalid
//! request, echoing the `id` when there is one) for JSON that is not a message — and the session to go on.
//! Reading is therefore done here, while `lsp_server`'s message types and `Message::write` are reused.

use std::io::{self, BufRead, Read, Write};

use lsp_server::{ErrorCode, Message};
use serde_json::{json, Value};

/// A body larger than this is skipped with an error response rather than buffered (a policy is a few KB).
pub const MAX_BODY: usize = 64 << 20;

/// What one frame of input held.
#[derive(Debug)]
pub enum Incoming {
    Message(Message),
    /// Not a valid message: the JSON-RPC error response to send back.
    Invalid(Value),
}

/// Reads the next frame; `None` at the end of the input.
pub fn read(input: &mut impl BufRead) -> io::Result<Option<Incoming>> {
    let length = match read_headers(input)? {
        None => return Ok(None),
        Some(Ok(length)) => length,
        Some(Err(why)) => return Ok(Some(Incoming::Invalid(error(Value::Null, ErrorCode::ParseError, &why)))),
    };
    if length > MAX_BODY {
        io::copy(&mut input.take(length as u64), &mut io::sink())?;
        let why = format!("message of {length} bytes is over the {MAX_BODY}-byte limit");
        return Ok(Some(Incoming::Invalid(error(Value::Null, ErrorCode::InvalidRequest, &why))));
    }
    let mut body = vec![0; length];
    input.read_exact(&mut body)?;
    Ok(Some(decode(&body)))
}

/// Turns one body into a message or the error response it deserves.
pub fn decode(body: &[u8]) -> Incoming {
    let value: Value = match serde_json::from_slice(body) {
        Ok(value) => value,
        Err(e) => return Incoming::Invalid(error(Value::Null, ErrorCode::ParseError, &format!("not JSON: {e}"))),
    };
    let id = match value.get("id") {
        Some(id @ (Value::Number(_) | Value::String(_))) => id.clone(),
        _ => Value::Null,
    };
    if value.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Incoming::Invalid(error(id, ErrorCode::InvalidRequest, "not a JSON-RPC 2.0 message"));
    }
    match serde_json::from_value::<Message>(value) {
        Ok(message) => Incoming::Message(message),
        Err(e) => Incoming::Invalid(error(id, ErrorCode::InvalidRequest, &format!("not an LSP message: {e}"))),
    }
}

/// The header block's `Content-Length`: `Ok(None)` at the end of input, `Err` for a block without a usable
/// one. Lines that are not `Name: value` are tolerated until the blank line, so one corrupt header costs
/// one error response, not the session.
fn read_headers(input: &mut impl BufRead) -> io::Result<Option<Result<usize, String>>> {
    let mut length: Option<Result<usize, String>> = None;
    let mut line = Vec::new();
    let mut any = false;
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(if any { Some(Err("input ended inside a header".into())) } else { None });
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end_matches(['\r', '\n']);
        if text.is_empty() {
            if !any {
                continue; // stray blank lines between messages
            }
            return Ok(Some(length.unwrap_or_else(|| Err("header block without Content-Length".into()))));
        }
        any = true;
        if let Some((name, value)) = text.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                let value = value.trim();
                length = Some(value.parse().map_err(|_| format!("bad Content-Length `{value}`")));
            }
        }
    }
}

/// A JSON-RPC error response.
pub fn error(id: Value, code: ErrorCode, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code as i32, "message": message } })
}

/// Writes one raw JSON value as a frame.
pub fn write_value(output: &mut impl Write, value: &Value) -> io::Result<()> {
    let text = value.to_string();
    write!(output, "Content-Length: {}\r\n\r\n{text}", text.len())?;
    output.flush()
}

/// Writes a message as a frame (`jsonrpc: "2.0"` added by `lsp_server`).
pub fn write_message(output: &mut impl Write, message: &Message) -> io::Result<()> {
    message.write(output)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> Vec<u8> {
        format!("Content-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
    }

    fn read_all(input: &[u8]) -> Vec<Incoming> {
        let mut reader = io::BufReader::new(input);
        let mut out = Vec::new();
        while let Some(incoming) = read(&mut reader).expect("reads") {
            out.push(incoming);
        }
        out
    }

    fn code(incoming: &Incoming) -> (i64, Value) {
        match incoming {
            Incoming::Invalid(v) => (v["error"]["code"].as_i64().unwrap(), v["id"].clone()),
            Incoming::Message(m) => panic!("expected an error, got {m:?}"),
        }
    }

    #[test]
    fn reads_messages_and_keeps_going_after_malformed_ones() {
        let mut input = frame(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}"#);
        input.extend(frame("{not json"));
        input.extend(frame(r#"{"jsonrpc":"2.0","id":7,"method":42}"#));
        input.extend(frame(r#"[1,2]"#));
        input.extend(b"Content-Length: nope\r\n\r\n");
        input.extend(b"X-Garbage\r\n");
        input.extend(frame(r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#));
        let got = read_all(&input);
        assert_eq!(got.len(), 6, "{got:?}");
        assert!(matches!(&got[0], Incoming::Message(Message::Request(r)) if r.method == "initialize"));
        assert_eq!(code(&got[1]), (-32700, Value::Null));
        assert_eq!(code(&got[2]), (-32600, json!(7)), "the id is echoed");
        assert_eq!(code(&got[3]), (-32600, Value::Null));
        assert_eq!(code(&got[4]), (-32700, Value::Null));
        // The garbage line joins the next header block, which still has its Content-Length.
        assert!(matches!(&got[5], Incoming::Message(Message::Notification(n)) if n.method == "initialized"));
    }

    #[test]
    fn oversized_and_truncated_input_do_not_panic() {
        let mut input = format!("Content-Length: {}\r\n\r\n", MAX_BODY + 1).into_bytes();
        input.extend(vec![b' '; MAX_BODY + 1]);
        input.extend(frame(r#"{"jsonrpc":"2.0","method":"exit"}"#));
        let got = read_all(&input);
        assert_eq!(code(&got[0]).0, -32600);
        assert!(matches!(&got[1], Incoming::Message(Message::Notification(n)) if n.method == "exit"));

        let mut reader = io::BufReader::new(&b"Content-Length: 10\r\n\r\nabc"[..]);
        assert!(read(&mut reader).is_err(), "a body cut short is an I/O error (the client is gone)");
        let got = read_all(b"Content-Length: 3\r\n");
        assert_eq!(code(&got[0]).0, -32700);
        assert!(read_all(b"").is_empty());
        assert_eq!(code(&decode(b"\xff\xfe")).0, -32700, "not UTF-8");
    }

    #[test]
    fn writes_frames_a_client_can_read_back() {
        let mut out = Vec::new();
        write_value(&mut out, &error(json!("a"), ErrorCode::MethodNotFound, "no")).unwrap();
        let msg = Message::Notification(lsp_server::Notification::new("x/é".into(), json!({"t": "🚀"})));
        write_message(&mut out, &msg).unwrap();
        let got = read_all(&out);
        assert!(matches!(&got[0], Incoming::Message(Message::Response(r)) if r.response_result.is_err()));
        assert!(matches!(&got[1], Incoming::Message(Message::Notification(n)) if n.method == "x/é"));
    }
}
