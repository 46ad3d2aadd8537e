//! A stream's documents, one at a time: saphyr-parser's events for the document are kept, measured
//! ([`crate::measure`]), then built into a [`Value`]; an alias is built by replaying its anchor's events, which
//! the measure has already paid for. Merge keys (`<<: *defaults`, `<<: [*a, *b]`) are applied as a mapping
//! ends, as kubectl applies them: the mapping's own keys win, then earlier merged mappings over later ones.

use std::collections::HashMap;

use saphyr_parser::{Event, Marker, Parser, ScalarStyle, Span};
use yaml_serde::{Mapping, Value};

use crate::budget::Budget;
use crate::error::Error;
use crate::measure::{self, Anchor};
use crate::path::quote;
use crate::scalar::{self, Tagging};
use crate::trail::Trail;

pub(crate) fn documents(text: &str, budget: &Budget) -> Result<Vec<Value>, Error> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut events: Vec<(Event<'_>, Span)> = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| Error::syntax(docs.len() + 1, path_after(&events), &e))?;
        match event {
            Event::DocumentEnd => {
                docs.push(document(&events, text, docs.len() + 1, budget)?);
                events.clear();
            }
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::Nothing => {}
            event => events.push((event, span)),
        }
    }
    if !events.is_empty() {
        docs.push(document(&events, text, docs.len() + 1, budget)?);
    }
    Ok(docs)
}

/// Where a syntax error is: the path after the events read so far.
fn path_after(events: &[(Event<'_>, Span)]) -> String {
    let mut trail = Trail::default();
    for (event, _) in events {
        match event {
            Event::SequenceStart(..) => trail.enter_seq(),
            Event::MappingStart(..) => trail.enter_map(),
            Event::SequenceEnd | Event::MappingEnd => {
                trail.leave();
                trail.node_done(None);
            }
            Event::Scalar(value, ..) => trail.node_done(Some(value)),
            Event::Alias(_) => trail.node_done(None),
            _ => {}
        }
    }
    trail.path().to_string()
}

/// One document's events as a value.
fn document(events: &[(Event<'_>, Span)], text: &str, doc: usize, budget: &Budget) -> Result<Value, Error> {
    let anchors = measure::anchors(events, text, doc, budget)?;
    Build { doc, anchors, frames: Vec::new(), trail: Trail::default(), root: Value::Null }.run(events)
}

/// A list or mapping being built.
struct Frame {
    tagging: Tagging,
    kind: Kind,
}

enum Kind {
    Seq(Vec<Value>),
    Map { map: Mapping, pending: Pending, merges: Vec<(Value, Marker)> },
}

/// What a mapping's next node is.
enum Pending {
    Key,
    /// The value of this key (where it was written).
    Value(Value, Marker),
    /// What the merge key `<<` merges.
    Merge(Marker),
}

struct Build<'e> {
    doc: usize,
    anchors: HashMap<usize, Anchor>,
    frames: Vec<Frame>,
    trail: Trail<'e>,
    root: Value,
}

impl<'e> Build<'e> {
    fn run(mut self, events: &'e [(Event<'_>, Span)]) -> Result<Value, Error> {
        // Ranges of events still to read: the document, and the anchors being replayed for aliases in it.
        let mut ranges = vec![(0, events.len())];
        while let Some(range) = ranges.last_mut() {
            if range.0 >= range.1 {
                ranges.pop();
                continue;
            }
            let (event, span) = &events[range.0];
            range.0 += 1;
            let (value, key, merge_key) = match event {
                Event::Alias(id) => {
                    let Some(anchor) = self.anchors.get(id) else {
                        return Err(self.refuse(span.start, "internal error: an alias was not measured".into()));
                    };
                    ranges.push((anchor.start, anchor.end));
                    continue;
                }
                Event::SequenceStart(_, tag) => {
                    self.frames.push(Frame { tagging: Tagging::of(tag.as_deref()), kind: Kind::Seq(Vec::new()) });
                    self.trail.enter_seq();
                    continue;
                }
                Event::MappingStart(_, tag) => {
                    let kind = Kind::Map { map: Mapping::new(), pending: Pending::Key, merges: Vec::new() };
                    self.frames.push(Frame { tagging: Tagging::of(tag.as_deref()), kind });
                    self.trail.enter_map();
                    continue;
                }
                Event::Scalar(text, style, _, tag) => {
                    let merge_key = *style == ScalarStyle::Plain && tag.is_none() && text == "<<";
                    let value = scalar::value(text, *style, Tagging::of(tag.as_deref()))
                        .map_err(|message| self.refuse(span.start, message))?;
                    (value, Some(text.as_ref()), merge_key)
                }
                Event::SequenceEnd | Event::MappingEnd => {
                    let Some(frame) = self.frames.pop() else { continue };
                    self.trail.leave();
                    (self.finish(frame)?, None, false)
                }
                _ => continue,
            };
            self.place(value, merge_key, span.start)?;
            self.trail.node_done(key);
        }
        Ok(self.root)
    }

    /// A complete node into its list or mapping.
    fn place(&mut self, value: Value, merge_key: bool, at: Marker) -> Result<(), Error> {
        let Some(frame) = self.frames.last_mut() else {
            self.root = value;
            return Ok(());
        };
        let Kind::Map { map, pending, merges } = &mut frame.kind else {
            if let Kind::Seq(items) = &mut frame.kind {
                items.push(value);
            }
            return Ok(());
        };
        match std::mem::replace(pending, Pending::Key) {
            Pending::Key if merge_key => *pending = Pending::Merge(at),
            Pending::Key => *pending = Pending::Value(value, at),
            Pending::Value(key, key_at) if map.contains_key(&key) => {
                return Err(self.refuse(key_at, format!("duplicate key {}", shown(&key))));
            }
            Pending::Value(key, _) => {
                map.insert(key, value);
            }
            Pending::Merge(key_at) if !merges.is_empty() => {
                return Err(self.refuse(key_at, "duplicate merge key \"<<\"".into()));
            }
            Pending::Merge(key_at) => merges.push((value, key_at)),
        }
        Ok(())
    }

    /// A list or mapping that has ended: merges applied, its tag kept.
    fn finish(&self, frame: Frame) -> Result<Value, Error> {
        let value = match frame.kind {
            Kind::Seq(items) => Value::Sequence(items),
            Kind::Map { mut map, merges, .. } => {
                for (merge, at) in merges {
                    merge_into(&mut map, merge).map_err(|message| {
                        Error::refused(self.doc, self.trail.path().key("<<").to_string(), at, message)
                    })?;
                }
                Value::Mapping(map)
            }
        };
        Ok(frame.tagging.wrap(value))
    }

    fn refuse(&self, at: Marker, message: String) -> Error {
        Error::refused(self.doc, self.trail.path().to_string(), at, message)
    }
}

/// `<<: X` in `map`: the entries of X (a mapping, or a list of them, earlier ones first) that `map` lacks.
fn merge_into(map: &mut Mapping, merge: Value) -> Result<(), String> {
    let mappings = match merge {
        Value::Mapping(m) => vec![m],
        Value::Sequence(items) => items
            .into_iter()
            .map(|item| match item {
                Value::Mapping(m) => Ok(m),
                other => Err(format!("a merge key's list holds mappings only, not {}", kind(&other))),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(format!("a merge key takes a mapping or a list of mappings, not {}", kind(&other))),
    };
    for mapping in mappings {
        for (k, v) in mapping {
            if !map.contains_key(&k) {
                map.insert(k, v);
            }
        }
    }
    Ok(())
}

/// How a value is described in messages (`a list`, `null`): the importer's words too.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// A key in a message.
fn shown(key: &Value) -> String {
    match key {
        Value::String(s) => quote(s),
        other => crate::to_string(other).map(|s| s.trim().to_string()).unwrap_or_else(|_| kind(other).to_string()),
    }
}
