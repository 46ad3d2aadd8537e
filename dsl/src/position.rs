//! Byte offsets to the `LINE:COL` users see: both 1-based, columns counted in characters (not bytes), so
//! a caret lines up under `é` or `→` the way an editor's cursor does.

/// A 1-based line and character column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineCol {
    pub line: usize,
    pub col: usize,
}

impl std::fmt::Display for LineCol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// The position of byte `offset`. Offsets past the end mean "end of input"; an offset inside a multi-byte
/// character counts as that character.
pub fn line_col(source: &str, offset: usize) -> LineCol {
    let offset = floor_char_boundary(source, offset);
    let before = &source[..offset];
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    LineCol { line: before.matches('\n').count() + 1, col: before[line_start..].chars().count() + 1 }
}

/// Line starts of a source, for converting many offsets without rescanning the text each time (a policy
/// of 10,000 rules would otherwise take quadratic time to number its rules).
pub struct LineIndex<'s> {
    source: &'s str,
    /// Byte offset of the first character of every line.
    starts: Vec<usize>,
}

impl<'s> LineIndex<'s> {
    pub fn new(source: &'s str) -> LineIndex<'s> {
        let starts = std::iter::once(0).chain(source.match_indices('\n').map(|(i, _)| i + 1)).collect();
        LineIndex { source, starts }
    }

    /// Same result as [`line_col`].
    pub fn line_col(&self, offset: usize) -> LineCol {
        let offset = floor_char_boundary(self.source, offset);
        let line = self.starts.partition_point(|&start| start <= offset);
        let start = self.starts.get(line.wrapping_sub(1)).copied().unwrap_or(0);
        LineCol { line: line.max(1), col: self.source[start..offset].chars().count() + 1 }
    }
}

/// The largest char boundary `<= offset` (clamped to the source length).
pub fn floor_char_boundary(source: &str, offset: usize) -> usize {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_and_characters() {
        let src = "ab\nc→d\n";
        assert_eq!(line_col(src, 0), LineCol { line: 1, col: 1 });
        assert_eq!(line_col(src, 2), LineCol { line: 1, col: 3 });
        assert_eq!(line_col(src, 3), LineCol { line: 2, col: 1 });
        // `d` comes after the 3-byte arrow: byte 7, character column 3.
        assert_eq!(line_col(src, 7), LineCol { line: 2, col: 3 });
        assert_eq!(line_col(src, 5), LineCol { line: 2, col: 2 }, "inside the arrow");
        assert_eq!(line_col(src, 99), LineCol { line: 3, col: 1 });
    }

    #[test]
    fn index_agrees_with_line_col() {
        for src in ["", "a", "ab\nc→d\n", "\n\n", "x\r\ny"] {
            let index = LineIndex::new(src);
            for offset in 0..=src.len() + 1 {
                assert_eq!(index.line_col(offset), line_col(src, offset), "{src:?} at {offset}");
            }
        }
    }
}
