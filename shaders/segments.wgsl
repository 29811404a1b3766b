// The segment of a batch's packed rows, shared by the kernels that take a
// batch by segments (attention.wgsl, lightning.wgsl, gated_delta.wgsl,
// dynamic_conv.wgsl; prepended to them, as naga has no #include): `rows`
// rows from packed row `row0`, of the sequence in cache slot `slot`, the
// first at absolute position `pos0`.
// Its Rust twin is gpu::params::Seg, which tests/kernel_params.rs compares
// with every `struct Seg` a kernel compiles.

struct Seg {
    row0: u32,
    rows: u32,
    slot: u32,
    pos0: u32,
}
