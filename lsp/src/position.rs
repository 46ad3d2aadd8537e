//! Byte offsets (what every span in the compiler is) ↔ LSP positions.
//!
//! LSP counts a position's `character` in UTF-16 code units by default (the one encoding every client
//! supports), and ends a line at `\n`, `\r\n` or a lone `\r`. A policy's `é` is two bytes but one unit, and
//! `🚀` four bytes but two units, so a caret computed from bytes or from `char`s lands in the wrong place on
//! any line with non-ASCII text before it. Conversions never fail: a position past the end of its line
//! means the line's end, one past the last line the end of the text, and one inside a surrogate pair the
//! start of that character.

use canary_dsl::ast::Span;
use lsp_types::{Position, Range};

/// Where each line starts, by LSP's line-break rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// Byte offset of the first character of every line; the first is 0.
    starts: Vec<usize>,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let bytes = text.as_bytes();
        let mut starts = vec![0];
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\n' => starts.push(i + 1),
                b'\r' if bytes.get(i + 1) == Some(&b'\n') => {
                    starts.push(i + 2);
                    i += 1;
                }
                b'\r' => starts.push(i + 1),
                _ => {}
            }
            i += 1;
        }
        Lines { starts }
    }

    /// The position of byte `offset` (clamped to the text; inside a character counts as its start).
    pub fn position(&self, text: &str, offset: usize) -> Position {
        let offset = floor_char_boundary(text, offset);
        let line = self.starts.partition_point(|&s| s <= offset).saturating_sub(1);
        let start = self.starts[line];
        let character = text[start..offset].encode_utf16().count();
        Position::new(line as u32, character as u32)
    }

    /// The byte offset of `position` (see the module doc for positions that are out of range).
    pub fn offset(&self, text: &str, position: Position) -> usize {
        let line = position.line as usize;
        let Some(&start) = self.starts.get(line) else { return text.len() };
        let end = self.content_end(text, line);
        let mut units = 0;
        for (i, c) in text[start..end].char_indices() {
            units += c.len_utf16();
            if units > position.character as usize {
                return start + i;
            }
        }
        end
    }

    pub fn range(&self, text: &str, span: Span) -> Range {
        Range::new(self.position(text, span.start), self.position(text, span.end))
    }

    pub fn span(&self, text: &str, range: Range) -> Span {
        Span::new(self.offset(text, range.start), self.offset(text, range.end))
    }

    /// The end of `line`'s text, before its line break.
    fn content_end(&self, text: &str, line: usize) -> usize {
        let next = self.starts.get(line + 1).copied().unwrap_or(text.len());
        let content = &text[self.starts[line]..next];
        let trimmed = content.strip_suffix('\n').unwrap_or(content);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        self.starts[line] + trimmed.len()
    }

    /// Line count (a text ending in a line break has an empty last line).
    pub fn count(&self) -> usize {
        self.starts.len()
    }
}

fn floor_char_boundary(text: &str, offset: usize) -> usize {
    canary_dsl::position::floor_char_boundary(text, offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    #[test]
    fn counts_utf16_units_not_bytes_or_chars() {
        // `é` is 2 bytes / 1 unit, `🚀` 4 bytes / 2 units.
        let text = "# é🚀\ncookie user=\"🚀\" -> v2\n";
        let lines = Lines::new(text);
        let v2 = text.find("v2").unwrap();
        assert_eq!(lines.position(text, v2), pos(1, 20), "the rocket counts 2");
        assert_eq!(lines.offset(text, pos(1, 20)), v2);
        let rocket = text.find('🚀').unwrap();
        assert_eq!(lines.position(text, rocket), pos(0, 3));
        assert_eq!(lines.position(text, rocket + 4), pos(0, 5), "after the pair");
        assert_eq!(lines.offset(text, pos(0, 4)), rocket, "inside the surrogate pair: its start");
        assert_eq!(lines.position(text, rocket + 2), pos(0, 3), "inside the bytes: its start");
    }

    #[test]
    fn every_char_boundary_round_trips() {
        for text in ["", "a", "é\n🚀x\r\ny\rz", "\n\n", "ab\r\n", "日本語 -> v2"] {
            let lines = Lines::new(text);
            for (offset, _) in text.char_indices().chain([(text.len(), ' ')]) {
                let p = lines.position(text, offset);
                let back = lines.offset(text, p);
                // A `\r\n` is one break: the offset of its `\n` maps to the line's end, which is its `\r`.
                let expected = if text[..offset].ends_with('\r') && text[offset..].starts_with('\n') {
                    offset - 1
                } else {
                    offset
                };
                assert_eq!(back, expected, "{text:?} at {offset} ({p:?})");
            }
        }
    }

    #[test]
    fn line_breaks_are_lf_crlf_and_lone_cr() {
        let text = "a\r\nb\rc\nd";
        let lines = Lines::new(text);
        assert_eq!(lines.count(), 4);
        assert_eq!(lines.position(text, text.find('d').unwrap()), pos(3, 0));
        assert_eq!(lines.offset(text, pos(1, 0)), text.find('b').unwrap());
        assert_eq!(lines.offset(text, pos(0, 9)), 1, "past the line's end: before its break");
    }

    #[test]
    fn out_of_range_positions_clamp() {
        let text = "ab\ncd";
        let lines = Lines::new(text);
        assert_eq!(lines.offset(text, pos(7, 0)), text.len());
        assert_eq!(lines.offset(text, pos(1, 99)), text.len());
        assert_eq!(lines.position(text, 999), pos(1, 2));
        assert_eq!(lines.range(text, Span::new(1, 4)), Range::new(pos(0, 1), pos(1, 1)));
    }
}
