//! Every struct the GPU reads, Rust (`qklab::gpu::params`) against WGSL as
//! naga reflects the shader the engine compiles: each kernel's parameter
//! struct against its file's `Params`, and the batch segment `Seg` against
//! every `struct Seg` a kernel compiles (one definition, segments.wgsl,
//! prepended where needed; a copy written into a kernel is checked too).
//! The same fields in the same order, with the same names, scalar types
//! and offsets, and the same size; and the constants both sides name (flag
//! bits, the matvec row limit) equal.

use naga::{Literal, Module, ScalarKind, TypeInner};
use qklab::gpu::kernels::{sources, PRELUDES};
use qklab::gpu::params::{Field, Layout, LAYOUTS, SEG, SHARED_CONSTANTS};

/// A kernel file as the engine composes it, or a prelude on its own.
fn module(file: &str) -> Module {
    let sources = sources();
    let src = match sources.iter().find(|(n, _)| *n == file) {
        Some((_, src)) => src.clone(),
        None => PRELUDES.iter().find(|(n, _)| *n == file).unwrap_or_else(|| panic!("no shader file {file}.wgsl")).1.to_string(),
    };
    naga::front::wgsl::parse_str(&src).unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(&src)))
}

/// The fields of the WGSL struct `name`, and its size.
fn wgsl_struct(m: &Module, name: &str) -> Option<(Vec<Field>, u32)> {
    m.types.iter().find_map(|(_, ty)| {
        let TypeInner::Struct { members, span } = &ty.inner else { return None };
        (ty.name.as_deref() == Some(name)).then(|| {
            let fields = members
                .iter()
                .map(|mem| {
                    let ty = match m.types[mem.ty].inner {
                        TypeInner::Scalar(s) if s.kind == ScalarKind::Uint && s.width == 4 => "u32",
                        TypeInner::Scalar(s) if s.kind == ScalarKind::Float && s.width == 4 => "f32",
                        ref other => panic!("a {name} field of type {other:?}"),
                    };
                    let name: &'static str = Box::leak(mem.name.clone().unwrap_or_default().into_boxed_str());
                    Field { name, ty, offset: mem.offset }
                })
                .collect();
            (fields, *span)
        })
    })
}

fn wgsl_params(m: &Module) -> Option<(Vec<Field>, u32)> {
    wgsl_struct(m, "Params")
}

/// Where `layout` and the struct of its name in `file` disagree.
fn compare(layout: &Layout, file: &str, out: &mut Vec<String>) {
    let Some((wgsl, span)) = wgsl_struct(&module(file), layout.wgsl) else {
        out.push(format!("{}: {file}.wgsl has no struct {}", layout.rust, layout.wgsl));
        return;
    };
    let what = format!("{file}.wgsl's {}", layout.wgsl);
    if wgsl.len() != layout.fields.len() {
        out.push(format!("{}: {} fields, {what} has {}", layout.rust, layout.fields.len(), wgsl.len()));
    }
    for (i, (r, w)) in layout.fields.iter().zip(&wgsl).enumerate() {
        if r != w {
            out.push(format!("{} field {i}: Rust {r:?}, {what} {w:?}", layout.rust));
        }
    }
    if span != layout.size {
        out.push(format!("{}: {} bytes, {what} {span}", layout.rust, layout.size));
    }
}

/// Every disagreement between the Rust layouts and the shaders.
fn mismatches() -> Vec<String> {
    let mut out = Vec::new();
    for layout in LAYOUTS {
        compare(layout, layout.file, &mut out);
    }
    for (file, _) in sources() {
        if wgsl_struct(&module(file), SEG.wgsl).is_some() {
            compare(&SEG, file, &mut out);
        }
    }
    compare(&SEG, SEG.file, &mut out);
    for (file, name, value) in SHARED_CONSTANTS {
        let m = module(file);
        let found = m.constants.iter().find(|(_, c)| c.name.as_deref() == Some(*name)).map(|(_, c)| &m.global_expressions[c.init]);
        match found {
            Some(naga::Expression::Literal(Literal::U32(v))) if v == value => {}
            other => out.push(format!("{file}.wgsl const {name}: {other:?}, Rust says {value}")),
        }
    }
    out
}

#[test]
fn rust_params_mirror_every_wgsl_params_struct() {
    let bad = mismatches();
    assert!(bad.is_empty(), "kernel parameters disagree:\n  {}", bad.join("\n  "));
}

#[test]
fn the_kernels_that_take_segments_compile_the_rust_seg() {
    // Both batched attention kernels read `array<Seg>`; the check above
    // covers them only if their compiled source has the struct.
    for file in ["attention", "lightning"] {
        assert!(wgsl_struct(&module(file), "Seg").is_some(), "{file}.wgsl compiles no struct Seg");
    }
}

#[test]
fn every_shader_with_params_has_a_rust_struct() {
    for (file, _) in sources() {
        if wgsl_params(&module(file)).is_some() {
            assert!(LAYOUTS.iter().any(|l| l.file == file), "{file}.wgsl has a Params struct but no Rust mirror in gpu::params");
        }
    }
}
