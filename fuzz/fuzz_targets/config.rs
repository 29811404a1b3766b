//! Fuzzes config.json against the demo's tensors (libFuzzer's bytes are
//! the config's text): the gate and, when it admits the config, both CPU
//! engines must give Ok or a clean error, never a panic, an abort or an
//! allocation sized from the config. tests/config_fuzz.rs runs the same
//! oracle on structured mutations in `cargo test`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use qklab::checkpoint::Checkpoint;
use qklab::config::arch_of;
use qklab::config::gate::check_tensors;
use qklab::model::calls::Logits;
use qklab::model::cpu::CpuModel;
use qklab::model::fast::FastModel;
use qklab::source::{block_on, MemSource};

const WEIGHTS: &[u8] = include_bytes!("../../www/demo/pre/model.safetensors");

fuzz_target!(|data: &[u8]| {
    let src = MemSource::new().with("config.json", data.to_vec()).with("model.safetensors", WEIGHTS.to_vec());
    let Ok(ck) = block_on(Checkpoint::open(src)) else { return };
    let Ok(arch) = arch_of(&ck) else { return };
    if check_tensors(&arch, &ck.tensors).is_err() {
        return;
    }
    let ids = [1u32, 5, 2, 7].map(|i| i % (arch.vocab_size.max(1) as u32));
    if let Ok(m) = block_on(CpuModel::load(&ck, arch.clone())) {
        let _ = m.forward(&ids);
    }
    if let Ok(m) = block_on(FastModel::load(&ck, arch)) {
        let mut seq = m.new_seq(false);
        let _ = m.step(&mut [&mut seq], &[&ids], Logits::Last);
    }
});
