//! What a call to an engine asks for and what loading reports: shared by
//! the three engines and the `Engine` face over them (which re-exports
//! them), and depending on none of them.

/// Which rows of logits a call returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    None,
    Last,
    All,
}

/// Loading progress: bytes uploaded so far of the total, and the tensor.
pub struct LoadProgress<'a> {
    pub done: u64,
    pub total: u64,
    pub tensor: &'a str,
}
