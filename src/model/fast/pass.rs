//! Where a step's rows sit: every sequence's new tokens packed into one
//! matrix of rows.

use super::rope::RopeTables;

/// What a step's mixers read of its rows: each packed row's position,
/// their RoPE tables, and where each sequence's rows sit.
#[derive(Clone, Copy)]
pub(super) struct Pass<'a> {
    pub(super) positions: &'a [usize],
    pub(super) ropes: &'a RopeTables,
    pub(super) spans: &'a [Span],
}

/// Where a sequence's rows sit in a packed step.
#[derive(Clone, Copy)]
pub(super) struct Span {
    pub(super) row0: usize,
    pub(super) rows: usize,
    pub(super) pos0: usize,
}
