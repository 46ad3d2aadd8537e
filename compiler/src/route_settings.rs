//! What a policy says about routes besides the subset: `mirror P% to SUBSET`, the `settings "FILE"` it names
//! and the profile a rule selects with `with NAME` (README "Route settings"). None of it decides a request, so
//! none of it enters the evaluator's [`canary_eval::Config`]: an old filter loads a new policy's config
//! unchanged, and the backends read this beside it (ARCHITECTURE.md "Route settings").

use std::collections::BTreeMap;

use canary_dsl::ast::{self, Span, StmtKind};

/// `mirror P% to SUBSET`, as declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorDecl {
    /// 1 = 0.01%, 10,000 = 100%.
    pub basis_points: u32,
    pub subset: String,
    /// The whole statement.
    pub span: Span,
}

/// A `with NAME` suffix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileRef {
    pub name: String,
    /// The profile name in the policy (for "unknown profile" errors).
    pub span: Span,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteExtras {
    /// `settings "FILE"`: the file as written (relative to the policy) and the string's span.
    pub settings_file: Option<(String, Span)>,
    /// A top-level `mirror`: every HTTP service without its own.
    pub global_mirror: Option<MirrorDecl>,
    /// Each service's own `mirror`.
    pub mirrors: BTreeMap<String, MirrorDecl>,
    /// `with NAME` by the start of its rule's span (the spans of [`crate::RuleSpans`]).
    pub profiles: BTreeMap<usize, ProfileRef>,
}

impl RouteExtras {
    pub fn from_policy(policy: &ast::Policy) -> RouteExtras {
        let mut extras = RouteExtras::default();
        collect(&policy.stmts, None, &mut extras);
        extras
    }

    /// Whether the policy says nothing about routes besides subsets (then every output is as before).
    pub fn is_empty(&self) -> bool {
        self.settings_file.is_none()
            && self.global_mirror.is_none()
            && self.mirrors.is_empty()
            && self.profiles.is_empty()
    }

    /// The mirror of an HTTP service: its own, else the top-level one.
    pub fn mirror(&self, service: &str) -> Option<&MirrorDecl> {
        self.mirrors.get(service).or(self.global_mirror.as_ref())
    }

    /// The profile the rule whose span starts at `rule_start` selects.
    pub fn profile(&self, rule_start: usize) -> Option<&ProfileRef> {
        self.profiles.get(&rule_start)
    }
}

fn collect(stmts: &[ast::Stmt], service: Option<&str>, out: &mut RouteExtras) {
    for stmt in stmts {
        if let Some(p) = &stmt.profile {
            out.profiles.entry(stmt.span.start).or_insert(ProfileRef { name: p.text.clone(), span: p.span });
        }
        match &stmt.kind {
            StmtKind::Mirror(m) => {
                let decl = MirrorDecl { basis_points: m.basis_points, subset: m.subset.text.clone(), span: stmt.span };
                match service {
                    Some(name) => {
                        out.mirrors.entry(name.to_string()).or_insert(decl);
                    }
                    None => {
                        out.global_mirror.get_or_insert(decl);
                    }
                }
            }
            StmtKind::Settings { path } => {
                out.settings_file.get_or_insert((path.text.clone(), path.span));
            }
            StmtKind::Service(svc) => collect(&svc.stmts, Some(&svc.name.text), out),
            _ => {}
        }
    }
}
