//! What aliases may cost. A document's own nodes cost what its text costs; an alias costs the whole node it
//! names, again, and nested aliases multiply (nine levels of nine aliases are 9⁹ nodes from a few hundred
//! bytes). So aliases are paid for from a budget per document, and nesting is bounded so that no value is too
//! deep to drop, compare or serialize by recursion.

/// Limits on one document. The defaults are far above what hand-written manifests use (an anchored
/// `trafficPolicy` reused by a few subsets is tens of nodes; Helm and kustomize output has no aliases at all)
/// and low enough that a document just within them still builds in about a millisecond. A document over them
/// is refused before any of it is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    /// Nodes (scalars, lists, mappings) that aliases may add to a document, all aliases together.
    pub alias_nodes: u64,
    /// Bytes of scalar text that aliases may add to a document (one long string aliased many times).
    pub alias_bytes: u64,
    /// Lists and mappings nested in one another, aliases expanded. serde_yaml's limit: 128.
    pub depth: usize,
}

impl Default for Budget {
    fn default() -> Self {
        Budget { alias_nodes: 10_000, alias_bytes: 1 << 20, depth: 128 }
    }
}

/// The expanded size of a node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Size {
    pub nodes: u64,
    pub bytes: u64,
}

impl Size {
    pub fn scalar(bytes: usize) -> Size {
        Size { nodes: 1, bytes: bytes as u64 }
    }

    /// Saturating: sizes are counted, never expanded, so they may be astronomically large.
    pub fn add(self, other: Size) -> Size {
        Size { nodes: self.nodes.saturating_add(other.nodes), bytes: self.bytes.saturating_add(other.bytes) }
    }
}
