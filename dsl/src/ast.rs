//! The syntax tree of a policy, with byte spans into the source so every later error can point at the
//! exact token. Values are already unescaped and normalised (header names lowercased, percentages turned
//! into basis points); anything the grammar accepts but the language forbids is rejected by
//! [`crate::check`], not represented here as "invalid".

/// A byte range `start..end` in the policy source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end: end.max(start) }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl From<pest::Span<'_>> for Span {
    fn from(s: pest::Span<'_>) -> Span {
        Span::new(s.start(), s.end())
    }
}

/// A name the user chose (service, subset, `let`), or a bare word, with where it was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name {
    pub text: String,
    pub span: Span,
}

/// A value written as a bare word or a quoted string; `text` is unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text {
    pub text: String,
    pub span: Span,
    pub quoted: bool,
}

/// A whole `.canary` file: the top-level scope.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Policy {
    pub stmts: Vec<Stmt>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub kind: StmtKind,
    /// `… with NAME` after a rule: the settings profile that rule's routes carry (README "Route settings").
    pub profile: Option<Name>,
    /// From the statement's first token to its last.
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StmtKind {
    /// `let NAME = COND`
    Let { name: Name, cond: Cond },
    /// `default SUBSET`
    Default { subset: Name },
    /// `COND -> SUBSET`
    Route { cond: Cond, subset: Name },
    /// `[COND:] P% SUBSET, … [by …]`
    Split { cond: Option<Cond>, split: Split },
    /// `mirror P% to SUBSET`: a share of the service's requests is copied to SUBSET (fire and forget); it
    /// decides nothing, so it never reaches the evaluator's `Config`.
    Mirror(Mirror),
    /// `settings "FILE"`: the route settings file, relative to the policy.
    Settings { path: Text },
    /// `service NAME [tcp] { … }`. The grammar accepts one inside another so the checker can say
    /// "services cannot be nested" instead of a confusing syntax error.
    Service(Service),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: Name,
    /// Span of the `tcp` keyword, when the service is a TCP service.
    pub tcp: Option<Span>,
    pub stmts: Vec<Stmt>,
    /// The `service` keyword.
    pub keyword: Span,
    pub open_brace: Span,
}

impl Service {
    pub fn is_tcp(&self) -> bool {
        self.tcp.is_some()
    }
}

/// `mirror P% to SUBSET`.
#[derive(Debug, Clone, PartialEq)]
pub struct Mirror {
    /// 1 = 0.01%, 10,000 = 100%.
    pub basis_points: u32,
    pub percent_span: Span,
    pub subset: Name,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub shares: Vec<Share>,
    pub by: Option<Sticky>,
    /// From the first percentage to the last subset (the `by` clause excluded).
    pub span: Span,
}

impl Split {
    /// Sum of the shares in basis points (never overflows: each share is at most 10,000).
    pub fn total(&self) -> u32 {
        self.shares.iter().map(|s| s.basis_points).sum()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Share {
    /// 1 = 0.01%, 10,000 = 100%.
    pub basis_points: u32,
    /// The `50%` token.
    pub percent_span: Span,
    pub subset: Name,
}

/// `by cookie NAME` / `by header NAME`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sticky {
    pub kind: StickyKind,
    /// The cookie or (lowercased) header name.
    pub name: Text,
    /// The whole `by …` clause.
    pub span: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyKind {
    Cookie,
    Header,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Cond {
    pub kind: CondKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum CondKind {
    /// `header NAME …`; the name is lowercased (header names are case-insensitive).
    Header {
        name: Text,
        test: HeaderTest,
    },
    /// `cookie NAME=VALUE`
    Cookie {
        name: Text,
        value: Text,
    },
    /// `query NAME=VALUE`
    Query {
        name: Text,
        value: Text,
    },
    /// `path "/prefix"`
    Path(Text),
    /// `method GET`
    Method(Text),
    /// `host "name"`
    Host(Text),
    /// `source LABEL=VALUE`
    Source {
        label: Text,
        value: Text,
    },
    /// `android`, `ios`, …
    Family(Family),
    /// A name bound by `let` (or a misspelt keyword: the checker tells which).
    Ref(Name),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Not(Box<Cond>),
}

impl CondKind {
    /// The keyword that introduces an atom, for messages such as "a tcp service cannot match `cookie`".
    pub fn keyword(&self) -> &'static str {
        match self {
            CondKind::Header { .. } => "header",
            CondKind::Cookie { .. } => "cookie",
            CondKind::Query { .. } => "query",
            CondKind::Path(_) => "path",
            CondKind::Method(_) => "method",
            CondKind::Host(_) => "host",
            CondKind::Source { .. } => "source",
            CondKind::Family(f) => f.name(),
            CondKind::Ref(_) => "let",
            CondKind::And(_) => "and",
            CondKind::Or(_) => "or",
            CondKind::Not(_) => "not",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum HeaderTest {
    /// `= "v"`
    Eq(Text),
    /// `!= "v"`
    Ne(Text),
    /// `~ "regex"`
    Regex(Text),
    /// `in ["a", "b"]`; the span covers the brackets (for "empty list" errors).
    In(Vec<Text>, Span),
    Present,
    Absent,
}

/// The built-in user-agent families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    Android,
    Ios,
    Chrome,
    Firefox,
    Safari,
    Edge,
    Mobile,
}

impl Family {
    pub const ALL: [Family; 7] =
        [Family::Android, Family::Ios, Family::Chrome, Family::Firefox, Family::Safari, Family::Edge, Family::Mobile];

    /// The keyword, which is also the name `canary_compiler`'s family table uses.
    pub fn name(self) -> &'static str {
        match self {
            Family::Android => "android",
            Family::Ios => "ios",
            Family::Chrome => "chrome",
            Family::Firefox => "firefox",
            Family::Safari => "safari",
            Family::Edge => "edge",
            Family::Mobile => "mobile",
        }
    }

    pub fn from_name(name: &str) -> Option<Family> {
        Family::ALL.into_iter().find(|f| f.name() == name)
    }
}
