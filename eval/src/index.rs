//! Indexes that replace a run of similar rules with one lookup, keeping first-match order: a sorted
//! table for exact values, and a literal index for substring (literal regex) tests, so a thousand
//! `header user-agent ~ "MyApp/1.2"` rules cost one pass over the header instead of a thousand.

use crate::policy::RuleId;

/// Exact value → first rule with that value; binary-searched.
#[derive(Debug)]
pub struct ExactTable {
    entries: Vec<(Box<[u8]>, RuleId)>,
}

impl ExactTable {
    /// `rules` in file order; for a value listed twice the earlier rule wins, as a linear scan would.
    pub fn new(rules: Vec<(Box<[u8]>, RuleId)>) -> Self {
        let mut entries = permute(rules, |(value, _)| value.to_vec());
        // Equal values stay in file order, so dedup keeps the first (winning) rule.
        entries.dedup_by(|later, first| later.0 == first.0);
        ExactTable { entries }
    }

    pub fn get(&self, value: &[u8]) -> Option<RuleId> {
        let i = self.entries.binary_search_by(|(k, _)| (**k).cmp(value)).ok()?;
        self.entries.get(i).map(|(_, rule)| *rule)
    }
}

/// Prefixes → the earliest rule whose prefix starts the value: one exact lookup per distinct prefix length.
#[derive(Debug)]
pub struct PrefixIndex {
    by_len: Vec<(usize, ExactTable)>,
}

impl PrefixIndex {
    pub fn new(prefixes: Vec<(Box<[u8]>, RuleId)>) -> Self {
        let mut lens: Vec<usize> = Vec::new();
        for (p, _) in &prefixes {
            if let Err(at) = lens.binary_search(&p.len()) {
                lens.insert(at, p.len());
            }
        }
        let by_len = lens
            .into_iter()
            .map(|len| (len, ExactTable::new(prefixes.iter().filter(|(p, _)| p.len() == len).cloned().collect())))
            .collect();
        PrefixIndex { by_len }
    }

    pub fn first_match(&self, value: &[u8]) -> Option<RuleId> {
        self.by_len
            .iter()
            .take_while(|(len, _)| *len <= value.len())
            .filter_map(|(len, table)| table.get(value.get(..*len)?))
            .min_by_key(|r| r.0)
    }
}

/// Literals → the earliest rule whose literal occurs anywhere in the value. One pass over the value:
/// a first-byte bitmap rejects most positions, the next `window` bytes (packed into a u64) are looked up in
/// an open-addressed table, and candidates are verified in full.
#[derive(Debug)]
pub struct LiteralIndex {
    /// 1 to 8 bytes: the shortest literal's length, as much as a u64 holds.
    window: usize,
    first_bytes: [u64; 4],
    /// Slots of (packed prefix, index of the first entry with that prefix); `u32::MAX` marks empty.
    slots: Vec<(u64, u32)>,
    shift: u32,
    /// Sorted by prefix, then rule: entries sharing a prefix are contiguous.
    entries: Vec<(u64, Box<[u8]>, RuleId)>,
}

impl LiteralIndex {
    /// `literals` must be non-empty strings; a rule may contribute several (its alternatives).
    pub fn new(literals: Vec<(Box<[u8]>, RuleId)>) -> Self {
        let window = literals.iter().map(|(l, _)| l.len()).min().unwrap_or(1).clamp(1, 8);
        let mut first_bytes = [0u64; 4];
        let entries: Vec<(u64, Box<[u8]>, RuleId)> = literals
            .into_iter()
            .filter_map(|(l, r)| {
                // Empty literals are left out; `window` is at most any other literal's length.
                let (&first, _) = l.split_first()?;
                let head = pack(l.get(..window)?);
                if let Some(bits) = first_bytes.get_mut(usize::from(first >> 6)) {
                    *bits |= 1 << (first & 63);
                }
                Some((head, l, r))
            })
            .collect();
        // Literals arrive in rule order, so equal prefixes stay sorted by rule.
        let entries = permute(entries, |(prefix, _, _)| prefix.to_be_bytes().to_vec());
        let size = (entries.len() * 2).next_power_of_two().max(2);
        let shift = 64 - size.trailing_zeros();
        let mut slots = vec![(0, u32::MAX); size];
        let mut previous = None;
        for (i, (prefix, _, _)) in entries.iter().enumerate() {
            if previous.replace(*prefix) == Some(*prefix) {
                continue;
            }
            // `slot_of` is below `size` (its top `log2(size)` bits), and the table is at most half full.
            let mut s = slot_of(*prefix, shift);
            while let Some(slot) = slots.get_mut(s) {
                if slot.1 == u32::MAX {
                    *slot = (*prefix, i as u32);
                    break;
                }
                s = (s + 1) & (size - 1);
            }
        }
        LiteralIndex { window, first_bytes, slots, shift, entries }
    }

    pub fn first_match(&self, value: &[u8]) -> Option<RuleId> {
        let mut best: Option<RuleId> = None;
        if value.len() < self.window {
            return None;
        }
        // `window` is at least 1 (`new`), so `windows` cannot panic.
        for (i, w) in value.windows(self.window).enumerate() {
            let Some(&b) = w.first() else { continue };
            if self.first_bytes.get(usize::from(b >> 6)).is_none_or(|bits| bits & (1 << (b & 63)) == 0) {
                continue;
            }
            let prefix = pack(w);
            let Some(start) = self.lookup(prefix) else { continue };
            for (p, literal, rule) in self.entries.iter().skip(start) {
                if *p != prefix {
                    break;
                }
                if best.is_some_and(|b| b.0 <= rule.0) {
                    break; // entries are sorted by rule within a prefix: nothing earlier follows
                }
                if value.get(i..).is_some_and(|rest| rest.starts_with(literal)) {
                    best = Some(*rule);
                    break;
                }
            }
        }
        best
    }

    fn lookup(&self, prefix: u64) -> Option<usize> {
        let mask = self.slots.len() - 1;
        let mut s = slot_of(prefix, self.shift);
        loop {
            let &(p, i) = self.slots.get(s)?;
            if i == u32::MAX {
                return None;
            }
            if p == prefix {
                return Some(i as usize);
            }
            s = (s + 1) & mask;
        }
    }
}

/// `items` stably sorted by `key`. Every index sorts through this one function so the wasm filter carries a
/// single copy of the sort code.
fn permute<T>(items: Vec<T>, key: impl Fn(&T) -> Vec<u8>) -> Vec<T> {
    let mut order: Vec<(Vec<u8>, usize)> = items.iter().map(&key).zip(0..).collect();
    order.sort_unstable();
    let mut slots: Vec<Option<T>> = items.into_iter().map(Some).collect();
    order.into_iter().filter_map(|(_, i)| slots.get_mut(i)?.take()).collect()
}

fn pack(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| acc << 8 | u64::from(b))
}

fn slot_of(prefix: u64, shift: u32) -> usize {
    (prefix.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> shift) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(lits: &[(&str, u32)]) -> LiteralIndex {
        LiteralIndex::new(lits.iter().map(|(l, r)| (l.as_bytes().into(), RuleId(*r))).collect())
    }

    #[test]
    fn earliest_rule_wins_wherever_its_literal_is() {
        let idx = index(&[("MyApp/1.", 0), ("MyApp/10.", 1), ("Android", 2), ("And", 3), ("Chrome", 4)]);
        assert_eq!(idx.first_match(b"Mozilla Android Chrome").map(|r| r.0), Some(2));
        assert_eq!(idx.first_match(b"Chrome then And").map(|r| r.0), Some(3));
        assert_eq!(idx.first_match(b"MyApp/10.1").map(|r| r.0), Some(1));
        assert_eq!(idx.first_match(b"MyApp/1.9 MyApp/10.1").map(|r| r.0), Some(0));
        assert_eq!(idx.first_match(b"Firefox").map(|r| r.0), None);
        assert_eq!(idx.first_match(b"An").map(|r| r.0), None);
    }

    #[test]
    fn agrees_with_naive_search() {
        let lits: Vec<String> = (0..200).map(|i| format!("tok{}x", i * 7 % 300)).collect();
        let idx =
            LiteralIndex::new(lits.iter().enumerate().map(|(i, l)| (l.as_bytes().into(), RuleId(i as u32))).collect());
        for n in 0..300 {
            let hay = format!("zz tok{n}x tok{}x", (n * 13) % 300);
            let naive = lits.iter().position(|l| hay.contains(l.as_str())).map(|i| i as u32);
            assert_eq!(idx.first_match(hay.as_bytes()).map(|r| r.0), naive, "{hay}");
        }
    }

    #[test]
    fn prefix_index_prefers_the_earliest_rule_not_the_longest_prefix() {
        let p = |s: &str, r| (Box::from(s.as_bytes()), RuleId(r));
        let idx = PrefixIndex::new(vec![p("/api/v1/", 0), p("/api/", 1), p("/api/v1/", 2), p("/", 3)]);
        assert_eq!(idx.first_match(b"/api/v1/x").map(|r| r.0), Some(0));
        assert_eq!(idx.first_match(b"/api/v2").map(|r| r.0), Some(1));
        assert_eq!(idx.first_match(b"/web").map(|r| r.0), Some(3));
        assert_eq!(idx.first_match(b"").map(|r| r.0), None);
    }

    #[test]
    fn exact_table_keeps_first_duplicate() {
        let t = ExactTable::new(vec![
            (b"a".as_slice().into(), RuleId(0)),
            (b"b".as_slice().into(), RuleId(1)),
            (b"a".as_slice().into(), RuleId(2)),
        ]);
        assert_eq!(t.get(b"a"), Some(RuleId(0)));
        assert_eq!(t.get(b"b"), Some(RuleId(1)));
        assert_eq!(t.get(b"c"), None);
    }
}
