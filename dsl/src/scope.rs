//! Which `let` names a condition can see. The file is one scope, each service block another nested in it;
//! a `let` is visible in its whole scope (before and after its definition, like Rust items), which is
//! why cycles are possible and [`crate::check`] rejects them.

use std::collections::BTreeMap;

use crate::ast::{Cond, Name, Stmt, StmtKind};

/// What [`Scope::definition`] finds.
pub struct Definition<'a, 's> {
    pub name: &'a Name,
    pub cond: &'a Cond,
    pub scope: &'s Scope<'a>,
}

pub struct Scope<'a> {
    lets: BTreeMap<&'a str, (&'a Name, &'a Cond)>,
    parent: Option<&'a Scope<'a>>,
}

impl<'a> Scope<'a> {
    /// The `let`s among `stmts`; for a duplicated name the first definition wins (the duplicate is an
    /// error anyway).
    pub fn new(stmts: &'a [Stmt], parent: Option<&'a Scope<'a>>) -> Scope<'a> {
        let mut lets = BTreeMap::new();
        for stmt in stmts {
            if let StmtKind::Let { name, cond } = &stmt.kind {
                lets.entry(name.text.as_str()).or_insert((name, cond));
            }
        }
        Scope { lets, parent }
    }

    /// Where a name is defined, what it stands for, and the scope its own names resolve in (a file-level
    /// `let` used inside a service still sees only file-level names), looking outward.
    pub fn definition<'s>(&'s self, name: &str) -> Option<Definition<'a, 's>> {
        match self.lets.get(name) {
            Some(&(name, cond)) => Some(Definition { name, cond, scope: self }),
            None => self.parent.and_then(|p| p.definition(name)),
        }
    }

    /// The enclosing scope (the file, for a service).
    pub fn parent(&self) -> Option<&'a Scope<'a>> {
        self.parent
    }

    /// Whether `name` is defined in this scope itself (not an enclosing one).
    pub fn defines(&self, name: &str) -> bool {
        self.lets.contains_key(name)
    }

    /// This scope's own `let`s, by name.
    pub fn own(&self) -> impl Iterator<Item = (&'a Name, &'a Cond)> + '_ {
        self.lets.values().copied()
    }

    /// Every visible name (for "did you mean").
    pub fn visible_names(&self) -> Vec<&'a str> {
        let mut names: Vec<&'a str> = self.lets.keys().copied().collect();
        if let Some(parent) = self.parent {
            names.extend(parent.visible_names());
        }
        names
    }
}
