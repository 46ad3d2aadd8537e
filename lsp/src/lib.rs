//! canary-lsp — `canaryc lsp`: a language server on stdin/stdout, for any editor (the VS Code extension in
//! `editors/vscode/` starts it).
//!
//! Contract: owns the protocol and the editor features; reads policies only through the core
//! (`canary-compiler`), `dsl` and `eval`. It may not depend on the backends, the importer, YAML or the CLI: an
//! editor never needs a manifest, and `cargo tree -p canary-lsp` shows it.
//!
//! **One engine.** Everything it says comes from the code `canaryc` runs: diagnostics are [`canary_compiler::compile`]'s
//! errors and `check`'s warnings ([`canary_compiler::analysis`], with their example requests), formatting is
//! [`canary_dsl::fmt::format`], family hovers read [`canary_compiler::families`], a rule's share of traffic is decided
//! by the evaluator through [`canary_compiler::request::simulate_each`], and `let` resolution is
//! [`canary_dsl::scope`]'s. No second parser, no second interpreter.
//!
//! **Why `lsp-server` + `lsp-types`.** rust-analyzer's scaffold is synchronous and small (serde and a
//! channel crate), which fits a server whose every request takes well under a millisecond: there is
//! nothing to overlap, so `tower-lsp`'s async design would only add tokio and its build time to every
//! `canaryc`. We use its message types and writer and read frames ourselves ([`transport`]), because its
//! stdio reader gives up at the first malformed message instead of answering it with a JSON-RPC error.
//!
//! Layout: [`server`] is the protocol state machine (message in, messages out, no I/O); [`document`] holds
//! one analysed text; [`diagnostics`], [`hover`] (with [`traffic`]), [`completion`] and [`symbols`] are the
//! features; [`position`] converts byte spans to LSP's UTF-16 positions; [`lexical`] finds the word under
//! the cursor. [`serve`] is the thin loop that moves bytes.

pub mod completion;
pub mod diagnostics;
pub mod document;
pub mod hover;
pub mod lexical;
pub mod position;
pub mod server;
pub mod symbols;
pub mod traffic;
pub mod transport;

use std::io::{self, BufRead, Write};
use std::panic::{catch_unwind, AssertUnwindSafe};

use lsp_server::Message;

use server::{Flow, Server};
use transport::Incoming;

/// Serves on the process's stdin/stdout until `exit` or the end of input; returns the exit code.
pub fn serve_stdio() -> i32 {
    serve(&mut io::stdin().lock(), &mut io::stdout().lock())
}

/// The loop: read a frame, hand it to the [`Server`], write what it answers. 0 after `shutdown` + `exit`,
/// 1 for `exit` without `shutdown` or input that ends first (as the protocol asks).
pub fn serve(input: &mut impl BufRead, output: &mut impl Write) -> i32 {
    let mut server = Server::new();
    loop {
        let message = match transport::read(input) {
            Ok(Some(Incoming::Message(message))) => message,
            Ok(Some(Incoming::Invalid(error))) => {
                if transport::write_value(output, &error).is_err() {
                    return 1;
                }
                continue;
            }
            Ok(None) => return if server.shut_down() { 0 } else { 1 },
            Err(e) => {
                eprintln!("canaryc lsp: cannot read the client's input: {e}");
                return 1;
            }
        };
        let id = match &message {
            Message::Request(r) => Some(r.id.clone()),
            _ => None,
        };
        // Nothing in the features should panic; if a bug does, the request gets an error and the session
        // lives on (the panic message goes to stderr, which editors show as the server's log).
        let (replies, flow) = catch_unwind(AssertUnwindSafe(|| server.handle(message)))
            .unwrap_or_else(|_| (id.map(Server::internal_error).into_iter().collect(), Flow::Continue));
        for reply in &replies {
            if transport::write_message(output, reply).is_err() {
                return 1;
            }
        }
        if let Flow::Exit(code) = flow {
            return code;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(body: &str) -> String {
        format!("Content-Length: {}\r\n\r\n{body}", body.len())
    }

    fn bodies(output: &[u8]) -> Vec<serde_json::Value> {
        let text = String::from_utf8(output.to_vec()).unwrap();
        text.split("Content-Length: ")
            .skip(1)
            .map(|part| serde_json::from_str(part.split_once("\r\n\r\n").unwrap().1).unwrap())
            .collect()
    }

    #[test]
    fn a_session_over_bytes_answers_malformed_input_and_exits_cleanly() {
        let input = [
            frame(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{}}}"#),
            frame("{oops"),
            frame(r#"{"jsonrpc":"2.0","id":2,"method":"textDocument/hover","params":"nope"}"#),
            frame(r#"{"jsonrpc":"2.0","id":3,"method":"shutdown"}"#),
            frame(r#"{"jsonrpc":"2.0","method":"exit"}"#),
        ]
        .concat();
        let mut output = Vec::new();
        let code = serve(&mut input.as_bytes(), &mut output);
        let replies = bodies(&output);
        assert_eq!(code, 0);
        assert_eq!(replies.len(), 4, "{replies:?}");
        assert_eq!(replies[0]["id"], 1);
        assert_eq!(
            (replies[1]["id"].clone(), replies[1]["error"]["code"].clone()),
            (serde_json::Value::Null, (-32700).into())
        );
        assert_eq!(replies[2]["error"]["code"], -32602);
        assert_eq!(replies[3], serde_json::json!({"jsonrpc": "2.0", "id": 3, "result": null}));
    }

    /// The editor grammar (`editors/vscode/syntaxes/canary.tmLanguage.json`, which the playground's highlighter
    /// is generated from too) colours exactly the language's keywords and families.
    #[test]
    fn the_editor_grammar_knows_every_keyword_and_family() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../editors/vscode/syntaxes/canary.tmLanguage.json");
        let grammar: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let words = |key: &str| -> Vec<String> {
            let pattern = grammar["repository"][key]["match"].as_str().unwrap_or_default();
            let list = regex_lite::Regex::new(r"\(\?:([a-z|]+)\)").unwrap().captures(pattern).map(|c| c[1].to_string());
            list.unwrap_or_default().split('|').map(String::from).collect()
        };
        let mut all: Vec<String> =
            ["statement-keywords", "logical-operators", "test-keywords", "attributes", "families"]
                .iter()
                .flat_map(|k| words(k))
                .collect();
        let mut families: Vec<String> = canary_compiler::families::names().map(String::from).collect();
        let mut in_grammar = words("families");
        families.sort();
        in_grammar.sort();
        assert_eq!(in_grammar, families);
        all.sort();
        let mut keywords: Vec<String> = canary_dsl::KEYWORDS.iter().map(|k| k.to_string()).collect();
        keywords.sort();
        assert_eq!(all, keywords);
    }

    /// Policy-like text: tokens of the language, non-ASCII characters, `\r`, brackets and quotes, in any order.
    fn policy_text() -> impl proptest::strategy::Strategy<Value = String> {
        let token = proptest::sample::select(vec![
            "service",
            "s",
            "{",
            "}",
            "let",
            "beta",
            "=",
            "default",
            "v1",
            "->",
            "50%",
            "android",
            "not",
            "and",
            "(",
            ")",
            "[",
            "]",
            "\"é🚀\"",
            "# 日本",
            "\n",
            "\r\n",
            "\r",
            " ",
            ";",
            ":",
            ",",
            "cookie",
            "u=x",
            "by",
            "header",
            "x",
            "~",
            "in",
            "present",
            "tcp",
            "é",
            "🚀",
        ]);
        proptest::collection::vec(token, 0..40).prop_map(|t| t.join(" "))
    }

    use proptest::prelude::*;

    proptest! {
        /// Every feature, at every kind of position (including past the end and inside surrogate pairs),
        /// answers every request on any text, without panicking.
        #[test]
        fn every_request_gets_an_answer_on_any_text(text in policy_text(), line in 0u32..6, character in 0u32..30) {
            let mut server = Server::new();
            let uri = "file:///p.canary";
            let request = |id: i32, method: &str, params: serde_json::Value| {
                Message::from(lsp_server::Request { id: id.into(), method: method.into(), params })
            };
            server.handle(request(0, "initialize", serde_json::json!({"capabilities": {}})));
            let open = serde_json::json!({"textDocument": {"uri": uri, "languageId": "canary", "version": 1, "text": text}});
            let (published, _) = server.handle(lsp_server::Notification::new("textDocument/didOpen".into(), open).into());
            prop_assert_eq!(published.len(), 1);
            let at = serde_json::json!({"textDocument": {"uri": uri}, "position": {"line": line, "character": character},
                "newName": "gamma", "context": {"includeDeclaration": true}, "options": {"tabSize": 2, "insertSpaces": true}});
            for (id, method) in ["textDocument/hover", "textDocument/completion", "textDocument/definition",
                "textDocument/references", "textDocument/prepareRename", "textDocument/rename", "textDocument/formatting"]
                .into_iter()
                .enumerate()
            {
                let (out, _) = server.handle(request(id as i32 + 1, method, at.clone()));
                prop_assert!(matches!(&out[..], [Message::Response(_)]), "{method}: {out:?}");
            }
        }
    }

    #[test]
    fn input_that_ends_without_shutdown_exits_1() {
        let mut output = Vec::new();
        assert_eq!(serve(&mut &b""[..], &mut output), 1);
    }
}
