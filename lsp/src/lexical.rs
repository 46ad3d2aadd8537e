//! The word under the cursor and what precedes it, for hover and completion. Comments and strings are
//! found the way the grammar defines them (`#` to the end of the line outside a string; strings never
//! span lines), so a `header` inside `"…"` or after `#` is not taken for the keyword.

use canary_dsl::ast::Span;

/// Where `offset` is on its line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    Code,
    String,
    Comment,
}

/// Whether `offset` is in code, a string or a comment.
pub fn place(text: &str, offset: usize) -> Place {
    let offset = canary_dsl::position::floor_char_boundary(text, offset);
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let mut in_string = false;
    let mut escaped = false;
    for c in text[start..offset].chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '#' if !in_string => return Place::Comment,
            _ => {}
        }
    }
    if in_string {
        Place::String
    } else {
        Place::Code
    }
}

/// The grammar's `word_char`: a `-` belongs to a word unless it starts `->`.
fn word_char(text: &str, i: usize) -> bool {
    match text.as_bytes().get(i) {
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.' => true,
        Some(b'-') => text.as_bytes().get(i + 1) != Some(&b'>'),
        _ => false,
    }
}

/// The word touching `offset` (a cursor right after a word counts), in code only.
pub fn word_at(text: &str, offset: usize) -> Option<Span> {
    let offset = canary_dsl::position::floor_char_boundary(text, offset);
    if place(text, offset) != Place::Code {
        return None;
    }
    let mut start = offset;
    while start > 0 && word_char(text, start - 1) {
        start -= 1;
    }
    let mut end = offset;
    while word_char(text, end) {
        end += 1;
    }
    (start < end).then_some(Span::new(start, end))
}

/// The start of the word being typed at `offset` (`offset` itself when none).
pub fn word_start(text: &str, offset: usize) -> usize {
    let mut start = canary_dsl::position::floor_char_boundary(text, offset);
    while start > 0 && word_char(text, start - 1) {
        start -= 1;
    }
    start
}

/// The token before `offset` on the same line, skipping blanks: `->`, a word, or one punctuation character
/// (so `%` after a percentage).
pub fn previous_token(text: &str, offset: usize) -> Option<&str> {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[line_start..offset].trim_end();
    if before.ends_with("->") {
        return Some("->");
    }
    let end = line_start + before.len();
    let start = word_start(text, end);
    if start < end {
        return Some(&text[start..end]);
    }
    before.chars().next_back().map(|c| &before[before.len() - c.len_utf8()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_comments_are_not_code() {
        let text = "header h = \"a # header\" -> v2 # header\n";
        assert_eq!(place(text, text.find("a #").unwrap()), Place::String);
        assert_eq!(place(text, text.find("-> v2").unwrap()), Place::Code);
        assert_eq!(place(text, text.rfind("header").unwrap()), Place::Comment);
        assert_eq!(word_at(text, 2), Some(Span::new(0, 6)));
        assert_eq!(word_at(text, text.find("a #").unwrap()), None);
        assert_eq!(word_at(text, text.rfind("header").unwrap() + 1), None);
    }

    #[test]
    fn words_follow_the_grammar() {
        let text = "header user-agent ~ \"x\"\nuser=tester->v2";
        let w = word_at(text, text.find("agent").unwrap()).unwrap();
        assert_eq!(&text[w.start..w.end], "user-agent");
        let w = word_at(text, text.find("tester").unwrap() + 6).unwrap();
        assert_eq!(&text[w.start..w.end], "tester", "the `-` of `->` is not part of the word");
        assert_eq!(word_at(text, text.find('~').unwrap()), None);
    }

    #[test]
    fn previous_tokens() {
        let text = "android -> v\n  50% v\ndefault \nby  \n";
        assert_eq!(previous_token(text, text.find("v\n").unwrap()), Some("->"));
        let after_pct = text.find("% v").unwrap() + 2;
        assert_eq!(previous_token(text, after_pct), Some("%"), "a `50%` ends in `%`");
        assert_eq!(previous_token(text, text.find("default ").unwrap() + 8), Some("default"));
        assert_eq!(previous_token(text, text.find("by").unwrap() + 4), Some("by"));
        assert_eq!(previous_token(text, 0), None);
    }
}
