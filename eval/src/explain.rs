//! The evaluator's own account of a decision ([`crate::Policy::explain`]): every rule tried in order,
//! whether its condition matched, the value each test saw, and a split's bucket.
//!
//! It is recorded by the very code that decides: the matcher and the split are generic over a [`Trace`],
//! and [`crate::Policy::decide`] runs them with `()`, whose methods are empty and inline away, so the
//! filter's path is unchanged (`cargo bench -p canary-compiler --bench evaluate` measures it). Explaining
//! walks the rules one by one instead of through the indexes that `decide` uses for long runs of similar
//! rules; both find the same first match (checked in debug builds and by the property tests).

use crate::policy::{Decision, RuleId, ServiceId, SubsetId};

/// How one request was decided.
#[derive(Debug, Clone, PartialEq)]
pub struct Explanation {
    pub service: ServiceId,
    /// The rules tried, in order: all that did not match, then the one that decided (if any).
    pub tried: Vec<Tried>,
    pub decision: Decision,
}

/// One rule as it was tried.
#[derive(Debug, Clone, PartialEq)]
pub struct Tried {
    pub rule: RuleId,
    pub line: u32,
    /// The condition as evaluated (`None`: the rule has none and applies to everything).
    pub when: Option<Node>,
    pub matched: bool,
    /// For a split that decided: its bucket and ranges.
    pub split: Option<SplitTrace>,
}

/// A condition as evaluated. The tree has the shape of the config's condition (`all`, `any`, `not`, single
/// tests), except that operands never evaluated — after the first failing operand of an `all`, the first
/// matching one of an `any` — are absent.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// A single test and the value it read (`None`: the attribute is absent).
    Test {
        seen: Option<Vec<u8>>,
        matched: bool,
    },
    All {
        operands: Vec<Node>,
        matched: bool,
    },
    Any {
        operands: Vec<Node>,
        matched: bool,
    },
    Not {
        operand: Box<Node>,
        matched: bool,
    },
}

impl Node {
    pub fn matched(&self) -> bool {
        match self {
            Node::Test { matched, .. }
            | Node::All { matched, .. }
            | Node::Any { matched, .. }
            | Node::Not { matched, .. } => *matched,
        }
    }
}

/// How a split picked its subset.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitTrace {
    /// The split is sticky (`by cookie …` / `by header …`).
    pub sticky: bool,
    /// The sticky key's value as read; `None` for a plain split, or a sticky one whose key is missing
    /// (then the bucket is a per-request draw).
    pub key: Option<Vec<u8>>,
    /// In `0..10_000`.
    pub bucket: u32,
    /// `[start, end)` bucket ranges and their subsets, the default's (possibly `None`) last.
    pub ranges: Vec<(u32, u32, Option<SubsetId>)>,
    pub subset: Option<SubsetId>,
}

/// What the matcher and the split report while deciding. The unit type records nothing.
pub(crate) trait Trace {
    /// A single test gave `matched`; `seen` reads the value it saw (called only by tracers that keep it, so
    /// `decide` never pays for the read).
    fn test<'a>(&mut self, seen: impl FnOnce() -> Option<&'a [u8]>, matched: bool);
    /// An `all`, `any` or `not` starts; its operands follow, then [`Trace::close`].
    fn open(&mut self);
    fn close(&mut self, kind: Kind, matched: bool);
    /// A split bucketed `key` (`None`: a random draw) into `bucket`; `key` is read only when kept.
    fn split<'a>(&mut self, key: impl FnOnce() -> Option<&'a [u8]>, bucket: u32);
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    All,
    Any,
    Not,
}

impl Trace for () {
    #[inline(always)]
    fn test<'a>(&mut self, _: impl FnOnce() -> Option<&'a [u8]>, _: bool) {}
    #[inline(always)]
    fn open(&mut self) {}
    #[inline(always)]
    fn close(&mut self, _: Kind, _: bool) {}
    #[inline(always)]
    fn split<'a>(&mut self, _: impl FnOnce() -> Option<&'a [u8]>, _: u32) {}
}

/// Builds the [`Node`] tree of one rule's condition and keeps its split's draw.
#[derive(Default)]
pub(crate) struct Recorder {
    /// Operands of each open `all`/`any`/`not`; the bottom level holds the finished root.
    levels: Vec<Vec<Node>>,
    pub(crate) split: Option<(Option<Vec<u8>>, u32)>,
}

impl Recorder {
    pub(crate) fn new() -> Self {
        Recorder { levels: vec![Vec::new()], split: None }
    }

    /// The condition's tree, once the matcher has returned.
    pub(crate) fn root(&mut self) -> Option<Node> {
        self.levels.first_mut().and_then(Vec::pop)
    }

    fn push(&mut self, node: Node) {
        match self.levels.last_mut() {
            Some(level) => level.push(node),
            None => self.levels.push(vec![node]),
        }
    }
}

impl Trace for Recorder {
    fn test<'a>(&mut self, seen: impl FnOnce() -> Option<&'a [u8]>, matched: bool) {
        self.push(Node::Test { seen: seen().map(<[u8]>::to_vec), matched });
    }

    fn open(&mut self) {
        self.levels.push(Vec::new());
    }

    fn close(&mut self, kind: Kind, matched: bool) {
        let mut operands = if self.levels.len() > 1 { self.levels.pop().unwrap_or_default() } else { Vec::new() };
        let node = match kind {
            Kind::All => Node::All { operands, matched },
            Kind::Any => Node::Any { operands, matched },
            Kind::Not => match operands.pop() {
                Some(operand) => Node::Not { operand: Box::new(operand), matched },
                None => Node::All { operands, matched },
            },
        };
        self.push(node);
    }

    fn split<'a>(&mut self, key: impl FnOnce() -> Option<&'a [u8]>, bucket: u32) {
        self.split = Some((key().map(<[u8]>::to_vec), bucket));
    }
}
