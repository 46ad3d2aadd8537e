//! Where a walk over a document's events is, as a YAML path, kept cheaply (an index or a borrowed key per
//! level) and written out only for an error. Both passes ([`crate::measure`], [`crate::read`]) follow the
//! events with one, so both name places the same way.

use crate::path::Path;

/// One open list or mapping.
enum Level<'e> {
    /// A list, at its next item.
    Seq(usize),
    /// A mapping, reading a key.
    Key,
    /// A mapping, reading the value of this key (`None`: a key that is not a scalar).
    Value(Option<&'e str>),
}

#[derive(Default)]
pub(crate) struct Trail<'e> {
    levels: Vec<Level<'e>>,
}

impl<'e> Trail<'e> {
    pub fn enter_seq(&mut self) {
        self.levels.push(Level::Seq(0));
    }

    pub fn enter_map(&mut self) {
        self.levels.push(Level::Key);
    }

    pub fn leave(&mut self) {
        self.levels.pop();
    }

    /// A node ended in the innermost level; `key` is its text when it is a scalar (a mapping key, maybe).
    pub fn node_done(&mut self, key: Option<&'e str>) {
        if let Some(level) = self.levels.last_mut() {
            *level = match level {
                Level::Seq(i) => Level::Seq(*i + 1),
                Level::Key => Level::Value(key),
                Level::Value(_) => Level::Key,
            };
        }
    }

    /// The path of the node being read (of its mapping, while a key is read).
    pub fn path(&self) -> Path {
        let mut path = Path::root();
        for level in &self.levels {
            path = match level {
                Level::Seq(i) => path.index(*i),
                Level::Key => path,
                Level::Value(Some(key)) => path.key(key),
                Level::Value(None) => path.key("?"),
            };
        }
        path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_keys_and_indices() {
        let mut t = Trail::default();
        t.enter_map();
        assert_eq!(t.path().as_str(), "");
        t.node_done(Some("spec"));
        t.enter_map();
        t.node_done(Some("http"));
        t.enter_seq();
        assert_eq!(t.path().as_str(), "spec.http[0]");
        t.node_done(None);
        assert_eq!(t.path().as_str(), "spec.http[1]");
        t.leave();
        t.node_done(None);
        t.node_done(Some("x.y"));
        assert_eq!(t.path().as_str(), "spec[\"x.y\"]");
    }
}
