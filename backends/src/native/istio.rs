//! What a VirtualService match block can hold, for the planner (which refuses what does not fit) and the
//! Istio writer (which puts each matcher in its field). A block is an AND with one matcher per field and per
//! map key: `uri`, `method`, `authority`, `headers[NAME]`, `withoutHeaders[NAME]`, `sourceLabels[LABEL]`.

use super::{Atom, HeaderTest};

/// Where a matcher goes in a match block. Two matchers for the same slot cannot share one block.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Slot<'a> {
    Uri,
    Method,
    Authority,
    Header(&'a str),
    WithoutHeader(&'a str),
    SourceLabel(&'a str),
}

pub fn slot(atom: &Atom) -> Slot<'_> {
    match atom {
        Atom::Header { name, test: HeaderTest::Prefix(p), invert: false } if name == ":path" && !p.is_empty() => {
            Slot::Uri
        }
        Atom::Header { name, test: HeaderTest::Exact(_), invert: false } if name == ":method" => Slot::Method,
        Atom::Header { name, test: HeaderTest::Host(_), invert: false } if name == ":authority" => Slot::Authority,
        Atom::Header { name, invert: false, .. } => Slot::Header(name),
        Atom::Header { name, invert: true, .. } => Slot::WithoutHeader(name),
        // The planner refuses cookies for Istio; a slot of its own makes any left over a conflict, not a loss.
        Atom::Cookie { name, .. } => Slot::Header(name),
        Atom::Source { label, .. } => Slot::SourceLabel(label),
    }
}

/// Why one AND of matchers has no single match block, if it has none: each field and map key holds one matcher.
/// (Two `sourceLabels` values for one label are not a conflict but a contradiction; the planner drops those.)
pub fn conflict(and: &[Atom]) -> Option<String> {
    let mut slots: Vec<(Slot<'_>, &Atom)> = and.iter().map(|a| (slot(a), a)).collect();
    slots.sort_by(|a, b| a.0.cmp(&b.0));
    slots.windows(2).find(|w| w[0].0 == w[1].0).map(|w| {
        format!("a VirtualService match block holds one matcher per field, and this condition needs two in {}", w[0].0)
    })
}

impl std::fmt::Display for Slot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slot::Uri => write!(f, "`uri`"),
            Slot::Method => write!(f, "`method`"),
            Slot::Authority => write!(f, "`authority`"),
            Slot::Header(name) => write!(f, "`headers.{name}`"),
            Slot::WithoutHeader(name) => write!(f, "`withoutHeaders.{name}`"),
            Slot::SourceLabel(label) => write!(f, "`sourceLabels.{label}`"),
        }
    }
}

/// Joins the inverted literal searches on one header into one matcher: `not (a or b)` holds exactly when
/// `not a` and `not b` do, and a match block has one `withoutHeaders` entry per header.
pub fn join_inverted_contains(and: Vec<Atom>) -> Vec<Atom> {
    let mut out: Vec<Atom> = Vec::with_capacity(and.len());
    for atom in and {
        if let Atom::Header { name, test: HeaderTest::Contains(literal), invert: true } = &atom {
            let same = out.iter_mut().find_map(|a| match a {
                Atom::Header { name: n, test, invert: true } if n == name => match test {
                    HeaderTest::Contains(first) => {
                        *test = HeaderTest::ContainsAny(vec![std::mem::take(first), literal.clone()]);
                        Some(())
                    }
                    HeaderTest::ContainsAny(all) => {
                        all.push(literal.clone());
                        Some(())
                    }
                    _ => None,
                },
                _ => None,
            });
            if same.is_some() {
                continue;
            }
        }
        out.push(atom);
    }
    out
}

/// Whether an AND asks for two values of one source label (it never holds).
pub fn contradictory(and: &[Atom]) -> bool {
    and.iter().any(|a| {
        and.iter().any(|b| match (a, b) {
            (Atom::Source { label: l1, value: v1 }, Atom::Source { label: l2, value: v2 }) => l1 == l2 && v1 != v2,
            _ => false,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(name: &str, test: HeaderTest, invert: bool) -> Atom {
        Atom::Header { name: name.into(), test, invert }
    }

    #[test]
    fn conflicts_and_contradictions_are_found() {
        let and = vec![
            h(":path", HeaderTest::Prefix("/api".into()), false),
            h("x", HeaderTest::Present, false),
            h("x", HeaderTest::Exact("a".into()), true),
            Atom::Source { label: "version".into(), value: "v2".into() },
        ];
        assert_eq!(conflict(&and), None);
        let two =
            vec![h("x", HeaderTest::Contains("a".into()), false), h("x", HeaderTest::Contains("b".into()), false)];
        assert!(conflict(&two).unwrap().contains("two in `headers.x`"));
        let src = |v: &str| Atom::Source { label: "version".into(), value: v.into() };
        assert!(contradictory(&[src("v1"), src("v2")]) && !contradictory(&[src("v1")]));
    }

    #[test]
    fn inverted_literals_on_one_header_join() {
        let c = |l: &str, invert: bool| h("ua", HeaderTest::Contains(l.into()), invert);
        let joined =
            join_inverted_contains(vec![c("Android", false), c("iPhone", true), c("CrKey", true), c("X", true)]);
        assert_eq!(
            joined,
            vec![
                c("Android", false),
                h("ua", HeaderTest::ContainsAny(vec!["iPhone".into(), "CrKey".into(), "X".into()]), true)
            ]
        );
        assert_eq!(conflict(&joined), None);
    }
}
