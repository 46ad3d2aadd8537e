//! The protocol state machine: one message in, the messages to send back out. No I/O here, so the whole
//! conversation (initialize, edits, every feature, shutdown, bad input) is unit-testable in memory; the
//! stdio loop in [`super::serve`] only moves bytes.

use std::collections::HashMap;

use lsp_server::{ErrorCode, Message, Notification, Request, RequestId, Response};
use lsp_types::{
    CompletionResponse, DidChangeTextDocumentParams, DidCloseTextDocumentParams, DidOpenTextDocumentParams,
    DocumentFormattingParams, GotoDefinitionParams, GotoDefinitionResponse, Hover, HoverContents, HoverParams,
    HoverProviderCapability, InitializeResult, Location, MarkupContent, MarkupKind, OneOf, Position,
    PositionEncodingKind, PrepareRenameResponse, PublishDiagnosticsParams, Range, ReferenceParams, RenameOptions,
    RenameParams, ServerCapabilities, ServerInfo, TextDocumentPositionParams, TextDocumentSyncCapability,
    TextDocumentSyncKind, TextEdit, Uri, WorkspaceEdit,
};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::document::Document;
use super::{completion, diagnostics, hover, symbols};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Uninitialized,
    Running,
    ShutDown,
}

/// Whether to keep reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// `exit` arrived: 0 after a `shutdown`, 1 without one (as the protocol asks).
    Exit(i32),
}

pub struct Server {
    state: State,
    docs: HashMap<Uri, Document>,
}

/// A request's failure: the JSON-RPC error code and message.
type Failed = (ErrorCode, String);

impl Default for Server {
    fn default() -> Self {
        Server::new()
    }
}

impl Server {
    pub fn new() -> Server {
        Server { state: State::Uninitialized, docs: HashMap::new() }
    }

    pub fn shut_down(&self) -> bool {
        self.state == State::ShutDown
    }

    pub fn handle(&mut self, message: Message) -> (Vec<Message>, Flow) {
        match message {
            Message::Request(req) => {
                let id = req.id.clone();
                let response = match self.request(req) {
                    Ok(value) => Response { id, response_result: Ok(value) },
                    Err((code, message)) => Response::new_err(id, code as i32, message),
                };
                (vec![response.into()], Flow::Continue)
            }
            Message::Notification(n) if n.method == "exit" => {
                (Vec::new(), Flow::Exit(if self.state == State::ShutDown { 0 } else { 1 }))
            }
            Message::Notification(n) if self.state == State::Running => (self.notification(n), Flow::Continue),
            // Before `initialize` and after `shutdown`, notifications are dropped; we send no requests, so a
            // response is never ours.
            Message::Notification(_) | Message::Response(_) => (Vec::new(), Flow::Continue),
        }
    }

    /// The response to a request that made the server fail unexpectedly (a bug: see [`super::serve`]).
    pub fn internal_error(id: RequestId) -> Message {
        Response::new_err(id, ErrorCode::InternalError as i32, "internal error in canaryc lsp (see its log)".into())
            .into()
    }

    fn request(&mut self, req: Request) -> Result<Value, Failed> {
        match (self.state, req.method.as_str()) {
            (State::Uninitialized, "initialize") => {
                self.state = State::Running;
                Ok(serde_json::to_value(initialize_result()).unwrap_or_default())
            }
            (State::Uninitialized, _) => {
                Err((ErrorCode::ServerNotInitialized, "the server has not received `initialize` yet".into()))
            }
            (State::ShutDown, _) => Err((ErrorCode::InvalidRequest, "the server is shut down".into())),
            (State::Running, "initialize") => Err((ErrorCode::InvalidRequest, "already initialized".into())),
            (State::Running, "shutdown") => {
                self.state = State::ShutDown;
                Ok(Value::Null)
            }
            (State::Running, method) => self.feature(method, req.params),
        }
    }

    fn feature(&self, method: &str, params: Value) -> Result<Value, Failed> {
        fn reply(value: impl serde::Serialize) -> Result<Value, Failed> {
            Ok(serde_json::to_value(value).unwrap_or_default())
        }
        match method {
            "textDocument/hover" => {
                let p: HoverParams = parse(params)?;
                let (doc, offset) = self.at(&p.text_document_position_params)?;
                reply(hover::hover(doc, offset).map(|h| Hover {
                    contents: HoverContents::Markup(MarkupContent { kind: MarkupKind::Markdown, value: h.markdown }),
                    range: Some(doc.lines.range(&doc.text, h.span)),
                }))
            }
            "textDocument/completion" => {
                let p: lsp_types::CompletionParams = parse(params)?;
                let (doc, offset) = self.at(&p.text_document_position)?;
                reply(CompletionResponse::Array(completion::complete(doc, offset)))
            }
            "textDocument/formatting" => {
                let p: DocumentFormattingParams = parse(params)?;
                let doc = self.doc(&p.text_document.uri)?;
                // A text that does not parse cannot be formatted; its diagnostics already say why.
                reply(canary_dsl::fmt::format(&doc.text).ok().map(|formatted| {
                    let end = doc.lines.position(&doc.text, doc.text.len());
                    let unchanged = formatted == doc.text;
                    if unchanged {
                        Vec::new()
                    } else {
                        vec![TextEdit::new(Range::new(Position::new(0, 0), end), formatted)]
                    }
                }))
            }
            "textDocument/definition" => {
                let p: GotoDefinitionParams = parse(params)?;
                let uri = &p.text_document_position_params.text_document.uri;
                let (doc, offset) = self.at(&p.text_document_position_params)?;
                let symbol = doc.policy.as_ref().and_then(|policy| symbols::at(policy, offset));
                reply(symbol.map(|s| {
                    GotoDefinitionResponse::Scalar(Location::new(uri.clone(), doc.lines.range(&doc.text, s.definition)))
                }))
            }
            "textDocument/references" => {
                let p: ReferenceParams = parse(params)?;
                let uri = &p.text_document_position.text_document.uri;
                let (doc, offset) = self.at(&p.text_document_position)?;
                let symbol = doc.policy.as_ref().and_then(|policy| symbols::at(policy, offset));
                reply(symbol.map(|s| {
                    let definition = p.context.include_declaration.then_some(s.definition);
                    let spans = definition.into_iter().chain(s.uses);
                    spans.map(|span| Location::new(uri.clone(), doc.lines.range(&doc.text, span))).collect::<Vec<_>>()
                }))
            }
            "textDocument/prepareRename" => {
                let p: TextDocumentPositionParams = parse(params)?;
                let (doc, offset) = self.at(&p)?;
                let (_, symbol) = self.renameable(doc, offset)?;
                let span = std::iter::once(symbol.definition)
                    .chain(symbol.uses)
                    .find(|s| s.start <= offset && offset <= s.end)
                    .unwrap_or(symbol.definition);
                reply(PrepareRenameResponse::Range(doc.lines.range(&doc.text, span)))
            }
            "textDocument/rename" => {
                let p: RenameParams = parse(params)?;
                let uri = p.text_document_position.text_document.uri.clone();
                let (doc, offset) = self.at(&p.text_document_position)?;
                let (policy, symbol) = self.renameable(doc, offset)?;
                if let Some(why) = symbols::rename_refusal(policy, &symbol, &p.new_name) {
                    return Err((ErrorCode::RequestFailed, why));
                }
                let edits = std::iter::once(symbol.definition)
                    .chain(symbol.uses)
                    .map(|span| TextEdit::new(doc.lines.range(&doc.text, span), p.new_name.clone()))
                    .collect();
                reply(WorkspaceEdit { changes: Some(HashMap::from([(uri, edits)])), ..Default::default() })
            }
            _ => Err((ErrorCode::MethodNotFound, format!("unsupported request `{method}`"))),
        }
    }

    /// The `let` at `offset`, when the document parses (renaming in a text that does not could miss uses).
    fn renameable<'d>(
        &self,
        doc: &'d Document,
        offset: usize,
    ) -> Result<(&'d canary_dsl::ast::Policy, symbols::LetSymbol), Failed> {
        let policy = doc
            .policy
            .as_ref()
            .ok_or((ErrorCode::RequestFailed, "the policy has syntax errors: fix them before renaming".to_string()))?;
        let symbol = symbols::at(policy, offset)
            .ok_or((ErrorCode::RequestFailed, "only `let` names can be renamed".to_string()))?;
        Ok((policy, symbol))
    }

    fn doc(&self, uri: &Uri) -> Result<&Document, Failed> {
        self.docs.get(uri).ok_or_else(|| (ErrorCode::RequestFailed, format!("document not open: {}", uri.as_str())))
    }

    fn at(&self, p: &TextDocumentPositionParams) -> Result<(&Document, usize), Failed> {
        let doc = self.doc(&p.text_document.uri)?;
        Ok((doc, doc.lines.offset(&doc.text, p.position)))
    }

    fn notification(&mut self, n: Notification) -> Vec<Message> {
        let result = match n.method.as_str() {
            "textDocument/didOpen" => parse(n.params).map(|p: DidOpenTextDocumentParams| {
                let doc = Document::new(p.text_document.text);
                self.publish(p.text_document.uri, Some(p.text_document.version), doc)
            }),
            "textDocument/didChange" => parse(n.params).map(|p: DidChangeTextDocumentParams| {
                let uri = p.text_document.uri;
                let old = self.docs.remove(&uri);
                let mut text = old.as_ref().map(|d| d.text.clone()).unwrap_or_default();
                for change in p.content_changes {
                    match change.range {
                        // We ask for full sync, but a client may still send ranges: apply them.
                        Some(range) => {
                            let span = super::position::Lines::new(&text).span(&text, range);
                            text.replace_range(span.start..span.end, &change.text);
                        }
                        None => text = change.text,
                    }
                }
                let doc = match old {
                    Some(old) => old.update(text),
                    None => Document::new(text),
                };
                self.publish(uri, Some(p.text_document.version), doc)
            }),
            "textDocument/didClose" => parse(n.params).map(|p: DidCloseTextDocumentParams| {
                self.docs.remove(&p.text_document.uri);
                let params = PublishDiagnosticsParams::new(p.text_document.uri, Vec::new(), None);
                vec![Notification::new("textDocument/publishDiagnostics".into(), params).into()]
            }),
            _ => Ok(Vec::new()), // `initialized`, `didSave`, `$/…`: nothing to do
        };
        result.unwrap_or_else(|(_, message)| vec![log_error(&format!("{}: {message}", n.method))])
    }

    fn publish(&mut self, uri: Uri, version: Option<i32>, doc: Document) -> Vec<Message> {
        let diagnostics = diagnostics::to_lsp(&doc.diagnostics, &doc.text, &doc.lines, &uri);
        self.docs.insert(uri.clone(), doc);
        let params = PublishDiagnosticsParams::new(uri, diagnostics, version);
        vec![Notification::new("textDocument/publishDiagnostics".into(), params).into()]
    }
}

fn parse<P: DeserializeOwned>(params: Value) -> Result<P, Failed> {
    serde_json::from_value(params).map_err(|e| (ErrorCode::InvalidParams, format!("invalid params: {e}")))
}

/// A notification we could not act on cannot be answered; the client shows this in its log instead.
fn log_error(message: &str) -> Message {
    let params = lsp_types::LogMessageParams { typ: lsp_types::MessageType::ERROR, message: message.to_string() };
    Notification::new("window/logMessage".into(), params).into()
}

fn initialize_result() -> InitializeResult {
    InitializeResult {
        capabilities: ServerCapabilities {
            position_encoding: Some(PositionEncodingKind::UTF16),
            text_document_sync: Some(TextDocumentSyncCapability::Kind(TextDocumentSyncKind::FULL)),
            hover_provider: Some(HoverProviderCapability::Simple(true)),
            completion_provider: Some(lsp_types::CompletionOptions::default()),
            definition_provider: Some(OneOf::Left(true)),
            references_provider: Some(OneOf::Left(true)),
            rename_provider: Some(OneOf::Right(RenameOptions {
                prepare_provider: Some(true),
                work_done_progress_options: Default::default(),
            })),
            document_formatting_provider: Some(OneOf::Left(true)),
            ..Default::default()
        },
        server_info: Some(ServerInfo { name: "canaryc".into(), version: Some(env!("CARGO_PKG_VERSION").into()) }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const URI: &str = "file:///w/p.canary";

    fn request(id: i32, method: &str, params: Value) -> Message {
        Request { id: id.into(), method: method.into(), params }.into()
    }

    fn notify(method: &str, params: Value) -> Message {
        Notification::new(method.into(), params).into()
    }

    fn result(out: &[Message]) -> Result<Value, (i32, String)> {
        match out {
            [Message::Response(r)] => r.response_result.clone().map_err(|e| (e.code, e.message)),
            other => panic!("expected one response, got {other:?}"),
        }
    }

    fn running(text: &str) -> Server {
        let mut s = Server::new();
        s.handle(request(1, "initialize", json!({"capabilities": {}})));
        s.handle(notify("initialized", json!({})));
        let open = json!({"textDocument": {"uri": URI, "languageId": "canary", "version": 1, "text": text}});
        s.handle(notify("textDocument/didOpen", open));
        s
    }

    fn at(line: u32, character: u32) -> Value {
        json!({"textDocument": {"uri": URI}, "position": {"line": line, "character": character}})
    }

    #[test]
    fn lifecycle_and_errors() {
        let mut s = Server::new();
        let (out, _) = s.handle(request(1, "textDocument/hover", at(0, 0)));
        assert_eq!(result(&out).unwrap_err().0, -32002, "not initialized");
        let (out, _) = s.handle(request(2, "initialize", json!({"capabilities": {}})));
        let caps = result(&out).unwrap();
        assert_eq!(caps["capabilities"]["positionEncoding"], "utf-16");
        assert_eq!(caps["capabilities"]["textDocumentSync"], 1);
        let (out, _) = s.handle(request(3, "textDocument/hover", json!({"nope": 1})));
        assert_eq!(result(&out).unwrap_err().0, -32602, "invalid params");
        let (out, _) = s.handle(request(4, "workspace/symbol", json!({"query": ""})));
        assert_eq!(result(&out).unwrap_err().0, -32601, "method not found");
        let (out, _) = s.handle(request(5, "textDocument/hover", at(0, 0)));
        assert!(result(&out).unwrap_err().1.starts_with("document not open"));
        let (out, _) = s.handle(notify("textDocument/didOpen", json!({"bad": true})));
        assert!(matches!(&out[..], [Message::Notification(n)] if n.method == "window/logMessage"));
        let (out, flow) = s.handle(request(6, "shutdown", Value::Null));
        assert_eq!((result(&out).unwrap(), flow), (Value::Null, Flow::Continue));
        let (out, _) = s.handle(request(7, "textDocument/hover", at(0, 0)));
        assert_eq!(result(&out).unwrap_err().0, -32600, "after shutdown");
        assert_eq!(s.handle(notify("exit", Value::Null)).1, Flow::Exit(0));
        assert_eq!(Server::new().handle(notify("exit", Value::Null)).1, Flow::Exit(1), "exit without shutdown");
    }

    #[test]
    fn diagnostics_follow_changes() {
        let mut s = running("default v1\n");
        let change =
            |text: &str| json!({"textDocument": {"uri": URI, "version": 2}, "contentChanges": [{"text": text}]});
        let (out, _) = s.handle(notify("textDocument/didChange", change("# é\nandroid -> \n")));
        let Message::Notification(n) = &out[0] else { panic!("{out:?}") };
        assert_eq!(n.params["version"], 2);
        assert_eq!(n.params["diagnostics"][0]["severity"], 1);
        // A ranged change (some clients send them even under full sync) is applied too.
        let ranged = json!({"textDocument": {"uri": URI, "version": 3}, "contentChanges": [
            {"range": {"start": {"line": 1, "character": 11}, "end": {"line": 1, "character": 11}}, "text": "v2"}]});
        let (out, _) = s.handle(notify("textDocument/didChange", ranged));
        let Message::Notification(n) = &out[0] else { panic!("{out:?}") };
        assert_eq!(n.params["diagnostics"], json!([]), "`android -> v2` compiles: {}", n.params);
        let (out, _) = s.handle(notify("textDocument/didClose", json!({"textDocument": {"uri": URI}})));
        let Message::Notification(n) = &out[0] else { panic!("{out:?}") };
        assert_eq!(n.params["diagnostics"], json!([]));
    }

    #[test]
    fn rename_and_definition_of_a_let() {
        let mut s = running("let beta = cookie b=1\nbeta -> v2 # é\nservice s {\n  beta -> v3\n}\n");
        let (out, _) = s.handle(request(2, "textDocument/definition", at(3, 3)));
        assert_eq!(
            result(&out).unwrap()["range"],
            json!({"start": {"line": 0, "character": 4}, "end": {"line": 0, "character": 8}})
        );
        let mut params = at(1, 1);
        params["newName"] = json!("gamma");
        let (out, _) = s.handle(request(3, "textDocument/rename", params.clone()));
        let edits = result(&out).unwrap()["changes"][URI].as_array().unwrap().clone();
        assert_eq!(edits.len(), 3);
        assert!(edits.iter().all(|e| e["newText"] == "gamma"));
        params["newName"] = json!("header");
        let (out, _) = s.handle(request(4, "textDocument/rename", params));
        assert_eq!(result(&out).unwrap_err(), (-32803, "`header` is a keyword".into()));
        let (out, _) = s.handle(request(5, "textDocument/prepareRename", at(1, 9)));
        assert_eq!(result(&out).unwrap_err().1, "only `let` names can be renamed");
    }

    #[test]
    fn formatting_replaces_the_whole_text_once() {
        let mut s = running("service  a{\n50%v2\n}\n");
        let (out, _) = s.handle(request(
            2,
            "textDocument/formatting",
            json!({"textDocument": {"uri": URI}, "options": {"tabSize": 2, "insertSpaces": true}}),
        ));
        let edits = result(&out).unwrap();
        assert_eq!(edits[0]["newText"], "service a {\n  50% v2\n}\n");
        assert_eq!(edits[0]["range"]["end"], json!({"line": 3, "character": 0}));
    }
}
