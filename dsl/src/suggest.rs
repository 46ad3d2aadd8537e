//! "did you mean …?" suggestions for misspelt keywords, families and names.

/// The candidate closest to `word`, if it is close enough to be a plausible typo: at most one edit per
/// three characters (at least one), comparing case-insensitively so `Android` suggests `android`.
/// Transposed neighbours count as one edit (`andriod` → `android`). Ties go to the earlier candidate.
///
/// Runs for every unknown name against every name in scope, so it skips candidates whose length alone
/// rules them out (each inserted or deleted character is an edit) and reuses its buffers: a policy of a
/// few hundred `let`s otherwise spent most of its check here.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_chars = lowercase_chars(word, Vec::new());
    let limit = (word_chars.len() / 3).max(1);
    let (mut candidate_chars, mut rows) = (Vec::new(), Rows::default());
    let mut best: Option<(usize, &'a str)> = None;
    for candidate in candidates {
        if candidate == word || candidate.len().abs_diff(word.len()) > 4 * limit {
            continue; // (an edit changes the length by at most 4 bytes: this gap needs more than `limit` edits)
        }
        candidate_chars = lowercase_chars(candidate, candidate_chars);
        if candidate_chars.len().abs_diff(word_chars.len()) > limit {
            continue;
        }
        let d = rows.distance(&word_chars, &candidate_chars);
        if d <= limit && best.is_none_or(|(best_d, _)| d < best_d) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c)
}

fn lowercase_chars(s: &str, mut into: Vec<char>) -> Vec<char> {
    into.clear();
    into.extend(s.chars().map(|c| c.to_ascii_lowercase()));
    into
}

/// Optimal string alignment distance (insertions, deletions, substitutions and adjacent transpositions),
/// keeping the three rows of its table that are ever needed between calls.
#[derive(Default)]
struct Rows {
    before: Vec<usize>,
    previous: Vec<usize>,
    current: Vec<usize>,
}

impl Rows {
    fn distance(&mut self, a: &[char], b: &[char]) -> usize {
        let Rows { before, previous, current } = self;
        // row i, column j = distance between a[..i] and b[..j].
        before.clear();
        before.resize(b.len() + 1, 0);
        previous.clear();
        previous.extend(0..=b.len());
        for i in 1..=a.len() {
            current.clear();
            current.resize(b.len() + 1, i);
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                let mut d = (previous[j] + 1).min(current[j - 1] + 1).min(previous[j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d = d.min(before[j - 2] + 1);
                }
                current[j] = d;
            }
            // before ← previous ← current; the oldest row is reused as the next `current`.
            std::mem::swap(before, previous);
            std::mem::swap(previous, current);
        }
        previous[b.len()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn distance(a: &str, b: &str) -> usize {
        Rows::default().distance(&a.chars().collect::<Vec<_>>(), &b.chars().collect::<Vec<_>>())
    }

    #[test]
    fn transposition_is_one_edit() {
        assert_eq!(distance("andriod", "android"), 1);
        assert_eq!(distance("headr", "header"), 1);
        assert_eq!(distance("", "abc"), 3);
    }

    #[test]
    fn suggests_only_plausible_typos() {
        let words = ["android", "ios", "header", "edge"];
        assert_eq!(closest("andriod", words), Some("android"));
        assert_eq!(closest("Android", words), Some("android"));
        assert_eq!(closest("hedaer", words), Some("header"));
        assert_eq!(closest("tester", words), None);
        assert_eq!(closest("io", words), Some("ios"));
        // Equally close: the first candidate wins; a length gap alone rules a candidate out.
        assert_eq!(closest("cat", ["bat", "cot"]), Some("bat"));
        assert_eq!(closest("ab", ["abcd", "xb"]), Some("xb"));
        assert_eq!(closest("é", ["e", "ée"]), Some("e"));
    }

    #[test]
    fn reused_rows_give_fresh_results() {
        let mut rows = Rows::default();
        let chars = |s: &str| s.chars().collect::<Vec<_>>();
        for (a, b, d) in [("android", "andriod", 1), ("", "abc", 3), ("kitten", "sitting", 3), ("ab", "", 2)] {
            assert_eq!(rows.distance(&chars(a), &chars(b)), d, "{a} {b}");
            assert_eq!(distance(a, b), d);
        }
    }
}
