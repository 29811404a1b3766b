//! The unpack kernel (shaders/unpack.wgsl) against the CPU decode, on every
//! one of the 65536 bit patterns of bf16 and of f16.

use qklab::gpu::unpack::{pack_halves, unpack, Half};
use qklab::gpu::Gpu;

mod common;
use common::gpu;
use qklab::safetensors::{decode_f32, Dtype};
use qklab::source::block_on;

fn same(a: f32, b: f32) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

fn check_all_patterns(gpu: &Gpu, kind: Half, dtype: Dtype) {
    // An odd count leaves the last word half-used.
    let halves: Vec<u16> = (0..=u16::MAX).chain([0x3f80]).collect();
    let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    let want = decode_f32("all", dtype, &bytes, "test").unwrap();
    let got = block_on(unpack(
        gpu,
        kind,
        &pack_halves(&halves),
        halves.len() as u32,
    ))
    .unwrap();
    assert_eq!(got.len(), want.len());
    let bad: Vec<(u16, f32, f32)> = (0..want.len())
        .filter(|&i| !same(got[i], want[i]))
        .map(|i| (halves[i], got[i], want[i]))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} patterns differ, first: {:?}",
        bad.len(),
        want.len(),
        &bad[..bad.len().min(5)]
    );
}

#[test]
fn bf16_unpack_matches_cpu_on_every_pattern() {
    if let Some(g) = gpu() {
        check_all_patterns(&g, Half::Bf16, Dtype::BF16);
    }
}

#[test]
fn f16_unpack_matches_cpu_on_every_pattern() {
    if let Some(g) = gpu() {
        check_all_patterns(&g, Half::F16, Dtype::F16);
    }
}

#[test]
fn empty_and_large_dispatches() {
    let Some(g) = gpu() else { return };
    assert!(block_on(unpack(&g, Half::Bf16, &[], 0)).unwrap().is_empty());
    // More halves than 65535 workgroups of 64 threads hold in one dimension.
    let n = 64 * 65535 + 129;
    let halves: Vec<u16> = (0..n).map(|i| (i % 65521) as u16 & 0x7f7f).collect();
    let got = block_on(unpack(&g, Half::Bf16, &pack_halves(&halves), n as u32)).unwrap();
    for i in [0usize, 1, 64 * 65535 - 1, 64 * 65535, n as usize - 1] {
        assert!(
            same(got[i], half::bf16::from_bits(halves[i]).to_f32()),
            "index {i}"
        );
    }
}
