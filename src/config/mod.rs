//! The model's configuration: HypeNet's `config.json` and the other
//! families' (`SPEC-hypenet.md`), the architecture resolved from it, its
//! inference from tensor names and shapes when no config is given, and the
//! check of tensors against it.

mod arch;

pub use arch::*;
