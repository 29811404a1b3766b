//! Each shader's storage buffers by name: the binding numbers of its
//! binding table, so that `ops` says which buffer goes where
//! (`(MATMUL.w, &chunk)`) rather than relying on the order of a list.
//! Binding 0 is every kernel's `Params` uniform, which the recorder binds.
//! `tests/kernel_params.rs` reads every shader with naga and fails when a
//! name or number here disagrees with its WGSL, or a buffer has no name.

/// One storage buffer of a shader: its name in shaders/`file`.wgsl and
/// its binding number in group 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub file: &'static str,
    pub name: &'static str,
    pub index: u32,
}

macro_rules! bindings {
    ($($(#[$doc:meta])* $konst:ident: $ty:ident in $file:literal { $($name:ident = $index:literal),* $(,)? })*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $ty {
                $(pub $name: Binding),*
            }

            $(#[$doc])*
            pub const $konst: $ty = $ty { $($name: Binding { file: $file, name: stringify!($name), index: $index }),* };
        )*

        /// Every binding, for the reflection test.
        pub const ALL: &[Binding] = &[$($($konst.$name),*),*];
    };
}

bindings! {
    /// unpack.wgsl.
    UNPACK: UnpackBindings in "unpack" { w = 1, out = 2 }

    /// matmul.wgsl (matmul and matvec).
    MATMUL: MatmulBindings in "matmul" { x = 1, w = 2, y = 3 }

    /// norm.wgsl.
    NORM: NormBindings in "norm" { x = 1, w = 2, y = 3 }

    /// heads.wgsl.
    HEADS: HeadsBindings in "heads" { w = 1, rope = 2, x = 3, positions = 4 }

    /// bias.wgsl.
    BIAS: BiasBindings in "bias" { w = 1, y = 2 }

    /// embed.wgsl.
    EMBED: EmbedBindings in "embed" { ids = 1, w = 2, x = 3 }

    /// elementwise.wgsl (swiglu and gate).
    ELEMENTWISE: ElementwiseBindings in "elementwise" { b = 1, a = 2 }

    /// argmax.wgsl.
    ARGMAX: ArgmaxBindings in "argmax" { logits = 1, out = 2 }

    /// attention.wgsl (attend, partial and combine).
    ATTENTION: AttentionBindings in "attention" { q = 1, k = 2, v = 3, o = 4, lse = 5, segs = 6, part = 7 }

    /// lightning.wgsl (chunk, part_state, carry_in and step).
    LIGHTNING: LightningBindings in "lightning" { q = 1, k = 2, v = 3, slopes = 4, state = 5, o = 6, segs = 7, carry = 8 }

    /// gated_delta.wgsl (conv, conv_keep, prepare, recur, wy, chunk, part_state, carry and gated_norm).
    GATED_DELTA: GatedDeltaBindings in "gated_delta" { x = 1, conv_w = 2, hist = 3, qkv = 4, beta = 5, g = 6, a_log = 7, dt_bias = 8, state = 9, o = 10, z = 11, norm_w = 12, segs = 13, scratch = 14 }

    /// dynamic_conv.wgsl (conv and conv_keep).
    DYNAMIC_CONV: DynamicConvBindings in "dynamic_conv" { x = 1, kernels = 2, hist = 3, qkv = 4, segs = 5 }

    /// routing.wgsl.
    ROUTING: RoutingBindings in "routing" { q = 1, k = 2, lse = 3, dist = 4, mass = 5, pooled = 6 }

    /// rows.wgsl.
    ROWS: RowsBindings in "rows" { map = 1, src = 2, dst = 3 }
}
