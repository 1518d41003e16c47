//! How deep a query may nest, and the parser's bookkeeping that enforces it.
//!
//! The parser recurses once per parenthesis, braces, unary operator and parenthesised pipeline;
//! everything that walks the syntax tree afterwards (`TraceCondition::of`, evaluation, `Display`,
//! `Clone`, `Drop`) recurses once per tree level, and a chain of binary operators (`a && b && c`,
//! `{ } >> { } >> { }`, `(q) + (q) + (q)`) builds a left-deep tree one level per operator although
//! the parser reads it in a loop. Unbounded, a few hundred parentheses or a few thousand `&&`
//! overflowed the stack and aborted the process (issue 10).
//!
//! So the parser counts levels the way the tree will have them: `descend`/`ascend` bracket
//! whatever sits one level down (refusing to pass the limit before recursing),
//! `begin_measure`/`end_measure` report how many levels a parsed operand uses below its root, and
//! `grow` raises a chain's height by one per operator and checks it as the chain grows, so a
//! too-long chain is refused before it is deep. Parentheses count as a level although they build
//! no node: they cost the parser recursion.

use crate::error::ParseError;

use super::Parser;

/// The deepest a query may nest: levels of parentheses, braces, unary operators and the
/// operators of a chain, counted as the syntax tree will have them.
///
/// Each level costs stack: in a debug build about 5–6 KiB in the parser (three frames per
/// parenthesis, see `field.rs`) and 1–3 KiB in each walk of the tree after it. At 128 levels
/// the deepest query uses under 0.8 MiB of a 2 MiB thread — Rust's default for spawned threads,
/// and Tokio's for its workers — so it is safe wherever a request runs, with room to spare (a
/// test runs every stage at the limit on such a thread). Real queries nest a handful of levels;
/// a generated `{ .id = 1 || .id = 2 || … }` of 120 values still fits.
pub const MAX_QUERY_DEPTH: usize = 128;

impl Parser<'_> {
    /// The error for a query past the limit, at the token that went one level too deep.
    fn too_deep(&self, at: usize) -> ParseError {
        ParseError::at(
            self.text,
            at,
            format!("query nests deeper than the limit of {MAX_QUERY_DEPTH}"),
        )
    }

    /// Records that the tree reaches `level`, refusing levels past the limit.
    pub(crate) fn reach(&mut self, level: usize, at: usize) -> Result<(), ParseError> {
        if level > MAX_QUERY_DEPTH {
            return Err(self.too_deep(at));
        }
        self.deepest = self.deepest.max(level);
        Ok(())
    }

    /// Goes one level down at `at` (an opening parenthesis or brace, a unary operator, a binary
    /// operator whose right operand follows), refusing to pass the limit. The recursive grammar
    /// functions call `descend`/`ascend` around the recursion rather than `nested`, which would
    /// add frames to every level.
    pub(crate) fn descend(&mut self, at: usize) -> Result<(), ParseError> {
        self.reach(self.depth + 1, at)?;
        self.depth += 1;
        Ok(())
    }

    pub(crate) fn ascend(&mut self) {
        self.depth -= 1;
    }

    /// Starts measuring the operand parsed next; hand the result to `end_measure`.
    pub(crate) fn begin_measure(&mut self) -> usize {
        std::mem::replace(&mut self.deepest, self.depth)
    }

    /// The height of the operand parsed since `begin_measure` (levels below the current one).
    pub(crate) fn end_measure(&mut self, outer_deepest: usize) -> usize {
        let height = self.deepest - self.depth;
        self.deepest = self.deepest.max(outer_deepest);
        height
    }

    /// Parses something one level below the current one (inside parentheses or braces, the
    /// operand of a unary operator, the right side of a binary operator); `at` is the token
    /// that opens the level.
    pub(crate) fn nested<T>(
        &mut self,
        at: usize,
        parse: impl FnOnce(&mut Self) -> Result<T, ParseError>,
    ) -> Result<T, ParseError> {
        self.descend(at)?;
        let result = parse(self);
        self.ascend();
        result
    }

    /// The height of a chain after one more operator (at `at`) joins its left side of height
    /// `lhs_height` to a right side of height `rhs_height`; refused past the limit.
    pub(crate) fn grow(
        &mut self,
        lhs_height: usize,
        rhs_height: usize,
        at: usize,
    ) -> Result<usize, ParseError> {
        let height = lhs_height.max(rhs_height) + 1;
        self.reach(self.depth + height, at)?;
        Ok(height)
    }
}
