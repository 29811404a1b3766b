//! Each kernel's uniform parameters as a Rust struct, mirrored field for
//! field (names, order, scalar types) by the `Params` struct of its WGSL
//! file; and the batch segment, mirrored by `struct Seg` (segments.wgsl).
//! `tests/kernel_params.rs` reads every shader with naga and fails when
//! the two disagree, so a slot can no longer be filled by position with
//! something its shader calls otherwise.

/// One field of a parameter struct, as the reflection test compares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field {
    pub name: &'static str,
    /// The WGSL scalar type: "u32" or "f32".
    pub ty: &'static str,
    pub offset: u32,
}

/// A kernel parameter struct: plain old data, in the layout of the WGSL
/// struct named `Params` in `FILE` (shaders/FILE.wgsl).
pub trait KernelParams: bytemuck::Pod {
    const FILE: &'static str;
    const FIELDS: &'static [Field];
}

/// A WGSL scalar a parameter can be.
pub trait Scalar {
    const WGSL: &'static str;
}

impl Scalar for u32 {
    const WGSL: &'static str = "u32";
}

impl Scalar for f32 {
    const WGSL: &'static str = "f32";
}

/// What the reflection test needs of one struct the GPU reads: the WGSL
/// struct named `wgsl` in shaders/`file`.wgsl mirrors the Rust one.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub rust: &'static str,
    pub wgsl: &'static str,
    pub file: &'static str,
    pub size: u32,
    pub fields: &'static [Field],
}

/// A `#[repr(C)]` plain-old-data struct and its fields as the reflection
/// test sees them (`NAME::FIELDS`), from one declaration so the two
/// cannot drift.
macro_rules! gpu_struct {
    ($(#[$attr:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$attr])*
        #[repr(C)]
        #[derive(Debug, Clone, Copy, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $(pub $field: $ty),*
        }

        impl $name {
            /// The fields in order, for the reflection test.
            pub const FIELDS: &'static [Field] = &[$(Field {
                name: stringify!($field),
                ty: <$ty as Scalar>::WGSL,
                offset: std::mem::offset_of!($name, $field) as u32,
            }),*];
        }
    };
}

macro_rules! params {
    ($($(#[$doc:meta])* $name:ident in $file:literal { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            gpu_struct! { $(#[$doc])* $name { $($field: $ty),* } }

            impl KernelParams for $name {
                const FILE: &'static str = $file;
                const FIELDS: &'static [Field] = $name::FIELDS;
            }
        )*

        /// Every parameter struct, for the reflection test.
        pub const LAYOUTS: &[Layout] = &[$(Layout {
            rust: stringify!($name),
            wgsl: "Params",
            file: $file,
            size: std::mem::size_of::<$name>() as u32,
            fields: $name::FIELDS,
        }),*];
    };
}

params! {
    /// unpack.wgsl: packed halves to f32.
    UnpackParams in "unpack" { n: u32 }

    /// matmul.wgsl (matmul and matvec): y[m, y_col0 + j] (+)= x[m, :] . W[j, :]
    /// for one chunk of W's rows, which are columns of y.
    MatmulParams in "matmul" {
        m: u32,
        n: u32,
        k: u32,
        x_row0: u32,
        x_stride: u32,
        y_row0: u32,
        y_stride: u32,
        y_col0: u32,
        accumulate: u32,
    }

    /// norm.wgsl: RMSNorm of rows.
    NormParams in "norm" { rows: u32, width: u32, x_row0: u32, eps: f32 }

    /// heads.wgsl: per-head norm, RoPE and HyPE, switched by `flags`
    /// ([`HEADS_NORM`], [`HEADS_ROPE`], [`HEADS_HYPE`]).
    HeadsParams in "heads" {
        rows: u32,
        heads: u32,
        dh: u32,
        x_row0: u32,
        flags: u32,
        rot: u32,
        eps: f32,
        hype_a: f32,
        scale: f32,
    }

    /// bias.wgsl: y[r, :] += b over n values of rows of `width`.
    BiasParams in "bias" { n: u32, width: u32, y_row0: u32 }

    /// embed.wgsl: one chunk of the embedding's rows.
    EmbedParams in "embed" { tokens: u32, width: u32, row0: u32, rows: u32 }

    /// elementwise.wgsl (swiglu, gate and silu).
    ElementwiseParams in "elementwise" { n: u32, width: u32 }

    /// argmax.wgsl: the argmax of rows of logits (one per workgroup) into
    /// output slots from `slot`.
    ArgmaxParams in "argmax" { n: u32, row: u32, slot: u32 }

    /// attention.wgsl: causal softmax attention of a batch's segments over
    /// caches of `ctx` rows per sequence, each query seeing the last
    /// `window` positions (0: all of them); `attend` writes output columns
    /// from `col0`, `partial` and `combine` split the keys into `splits`
    /// ranges of `split_keys`.
    AttendParams in "attention" {
        heads: u32,
        kv_heads: u32,
        dh: u32,
        ctx: u32,
        scale: f32,
        col0: u32,
        split_keys: u32,
        splits: u32,
        window: u32,
    }

    /// lightning.wgsl (chunk and step), by segments.
    LightningParams in "lightning" { heads: u32, kv_heads: u32, dk: u32, scale: f32, parts: u32, part_rows: u32 }

    /// gated_delta.wgsl (conv, conv_keep, prepare, recur, wy, chunk, part_state,
    /// carry, gated_norm):
    /// the gated delta rule over a batch's segments (`rows` packed rows).
    GatedDeltaParams in "gated_delta" {
        nk: u32,
        nv: u32,
        dk: u32,
        dv: u32,
        taps: u32,
        channels: u32,
        rows: u32,
        eps: f32,
        parts: u32,
        part_rows: u32,
    }

    /// dynamic_conv.wgsl (conv and conv_keep): a JetBlock's q and k through
    /// SiLU, its v through the dynamic convolution.
    DynamicConvParams in "dynamic_conv" { qk: u32, channels: u32, taps: u32 }

    /// rows.wgsl: rows of `width` moved by `count` pairs of a table, from
    /// pair `map0`.
    RowsParams in "rows" { width: u32, count: u32, map0: u32 }

    /// routing.wgsl: per-row routing reductions (a sliding-window layer's
    /// `window`; 0: the whole context).
    RowStatsParams in "routing" {
        rows: u32,
        heads: u32,
        kv_heads: u32,
        dh: u32,
        block: u32,
        blocks: u32,
        needle_start: u32,
        needle_end: u32,
        scale: f32,
        window: u32,
    }
}

/// `HeadsParams::flags` bits, as heads.wgsl's `FLAG_NORM`, `FLAG_ROPE`
/// and `FLAG_HYPE` (the reflection test compares them).
pub const HEADS_NORM: u32 = 1;
pub const HEADS_ROPE: u32 = 2;
pub const HEADS_HYPE: u32 = 4;

gpu_struct! {
    /// A segment of a batch's packed rows, as attention.wgsl and
    /// lightning.wgsl read it (`struct Seg`, from segments.wgsl): `rows`
    /// rows from packed row `row0`, of the sequence in cache slot `slot`,
    /// the first at absolute position `pos0`.
    #[derive(Eq)]
    Seg {
        row0: u32,
        rows: u32,
        slot: u32,
        pos0: u32,
    }
}

/// [`Seg`] for the reflection test, which compares it with every WGSL
/// `struct Seg` a kernel compiles.
pub const SEG: Layout = Layout {
    rust: "Seg",
    wgsl: "Seg",
    file: "segments",
    size: std::mem::size_of::<Seg>() as u32,
    fields: Seg::FIELDS,
};

/// Rows of x at or below this use the bandwidth-bound matvec kernel;
/// matmul.wgsl's `MV_ROWS` (compared by the reflection test).
pub const MATVEC_ROWS: u32 = 4;

/// Outputs a matvec workgroup computes: matmul.wgsl's `MV_OUT`.
pub const MATVEC_OUT: u32 = 8;

/// Named constants the Rust side shares with a shader: (file, WGSL name, value).
pub const SHARED_CONSTANTS: &[(&str, &str, u32)] = &[
    ("heads", "FLAG_NORM", HEADS_NORM),
    ("heads", "FLAG_ROPE", HEADS_ROPE),
    ("heads", "FLAG_HYPE", HEADS_HYPE),
    ("matmul", "MV_ROWS", MATVEC_ROWS),
    ("matmul", "MV_OUT", MATVEC_OUT),
];
