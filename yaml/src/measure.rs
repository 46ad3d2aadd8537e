//! The first pass over a document's events: what each anchored node would cost expanded, and whether the
//! document's aliases stay within the [`Budget`]. It builds nothing and expands nothing (an alias adds the
//! size its anchor was measured at), so a document that would expand to billions of nodes is refused after
//! reading its few hundred events, at the alias that overspends.

use std::collections::HashMap;

use saphyr_parser::{Event, Span};

use crate::budget::{Budget, Size};
use crate::error::Error;
use crate::trail::Trail;

/// An anchored node: where its events are (the second pass replays them for each alias) and its cost.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Anchor {
    /// Its first event and one past its last, in the document's events.
    pub start: usize,
    pub end: usize,
    pub size: Size,
    /// Lists and mappings nested in it, itself included (0 for a scalar).
    pub height: usize,
}

/// A list or mapping being measured.
struct Open {
    start: usize,
    anchor: usize,
    size: Size,
    height: usize,
}

/// The anchors of `events` (one document), by saphyr's anchor id; `Err` when the aliases overspend `budget`
/// or nesting is too deep. `text` and `doc` only name places in errors.
pub(crate) fn anchors(
    events: &[(Event<'_>, Span)],
    text: &str,
    doc: usize,
    budget: &Budget,
) -> Result<HashMap<usize, Anchor>, Error> {
    let mut anchors: HashMap<usize, Anchor> = HashMap::new();
    let mut open: Vec<Open> = Vec::new();
    let mut trail = Trail::default();
    let mut aliased = Size::default();
    for (i, (event, span)) in events.iter().enumerate() {
        let refuse =
            |trail: &Trail, message: String| Error::refused(doc, trail.path().to_string(), span.start, message);
        let (size, height, anchor, start, key) = match event {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                if open.len() >= budget.depth {
                    return Err(refuse(&trail, format!("lists and mappings nested more than {} deep", budget.depth)));
                }
                open.push(Open { start: i, anchor: *anchor, size: Size { nodes: 1, bytes: 0 }, height: 0 });
                match event {
                    Event::SequenceStart(..) => trail.enter_seq(),
                    _ => trail.enter_map(),
                }
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(node) = open.pop() else { continue };
                trail.leave();
                (node.size, node.height + 1, node.anchor, node.start, None)
            }
            Event::Scalar(value, _, anchor, _) => (Size::scalar(value.len()), 0, *anchor, i, Some(value.as_ref())),
            Event::Alias(id) => {
                let name = alias_name(text, span);
                let Some(a) = anchors.get(id).copied() else {
                    return Err(refuse(
                        &trail,
                        format!("alias {name} names no complete node before it in this document"),
                    ));
                };
                if open.len() + a.height > budget.depth {
                    let message = format!("alias {name} nests lists and mappings more than {} deep", budget.depth);
                    return Err(refuse(&trail, message));
                }
                aliased = aliased.add(a.size);
                if aliased.nodes > budget.alias_nodes {
                    let message = format!(
                        "aliases expand to more than {} nodes (alias {name}: {} nodes): refused before expanding",
                        budget.alias_nodes, a.size.nodes
                    );
                    return Err(refuse(&trail, message));
                }
                if aliased.bytes > budget.alias_bytes {
                    let message = format!(
                        "aliases expand to more than {} bytes of text (alias {name}: {} bytes): refused before expanding",
                        budget.alias_bytes, a.size.bytes
                    );
                    return Err(refuse(&trail, message));
                }
                (a.size, a.height, 0, i, None)
            }
            _ => continue,
        };
        if anchor != 0 {
            anchors.insert(anchor, Anchor { start, end: i + 1, size, height });
        }
        if let Some(parent) = open.last_mut() {
            parent.size = parent.size.add(size);
            parent.height = parent.height.max(height);
        }
        trail.node_done(key);
    }
    Ok(anchors)
}

/// `*name`, as written (saphyr's events carry only the anchor's number). Errors only: it walks the text.
fn alias_name(text: &str, span: &Span) -> String {
    let (start, end) = (span.start.index(), span.end.index());
    let name: String = text.chars().skip(start).take(end.saturating_sub(start).min(64)).collect();
    name.escape_debug().to_string()
}
