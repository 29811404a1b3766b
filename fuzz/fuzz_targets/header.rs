//! Fuzzes the safetensors header parser and the checkpoint opener: any
//! bytes must give Ok or a clean error, never a panic, overflow or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qklab::checkpoint::Checkpoint;
use qklab::source::{block_on, MemSource};

fuzz_target!(|data: &[u8]| {
    let _ = qklab::safetensors::parse_header("f", data, data.len() as u64 + 64);
    let src = MemSource::new().with("model.safetensors", data.to_vec());
    if let Ok(ck) = block_on(Checkpoint::open(src)) {
        let _ = qklab::config::arch_of(&ck).map(|a| qklab::summary::summarize(&ck, &a));
        let _ = block_on(ck.check_values(|_, _| {}));
    }
});
