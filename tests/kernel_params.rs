//! Every kernel's Rust parameter struct (`qklab::gpu::params`) against its
//! WGSL `Params` struct, as naga reflects the shader the engine compiles:
//! the same fields in the same order, with the same names, scalar types
//! and offsets, and the same size; and the constants both sides name
//! (flag bits, the matvec row limit) equal.

use naga::{Literal, Module, ScalarKind, TypeInner};
use qklab::gpu::kernels::sources;
use qklab::gpu::params::{Field, LAYOUTS, SHARED_CONSTANTS};

fn module(file: &str) -> Module {
    let sources = sources();
    let (_, src) = sources.iter().find(|(n, _)| *n == file).unwrap_or_else(|| panic!("no shader file {file}.wgsl"));
    naga::front::wgsl::parse_str(src).unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(src)))
}

/// The fields of the WGSL struct `Params`, and its size.
fn wgsl_params(m: &Module) -> Option<(Vec<Field>, u32)> {
    m.types.iter().find_map(|(_, ty)| {
        let TypeInner::Struct { members, span } = &ty.inner else { return None };
        (ty.name.as_deref() == Some("Params")).then(|| {
            let fields = members
                .iter()
                .map(|mem| {
                    let ty = match m.types[mem.ty].inner {
                        TypeInner::Scalar(s) if s.kind == ScalarKind::Uint && s.width == 4 => "u32",
                        TypeInner::Scalar(s) if s.kind == ScalarKind::Float && s.width == 4 => "f32",
                        ref other => panic!("a Params field of type {other:?}"),
                    };
                    let name: &'static str = Box::leak(mem.name.clone().unwrap_or_default().into_boxed_str());
                    Field { name, ty, offset: mem.offset }
                })
                .collect();
            (fields, *span)
        })
    })
}

/// Every disagreement between the Rust layouts and the shaders.
fn mismatches() -> Vec<String> {
    let mut out = Vec::new();
    for layout in LAYOUTS {
        let m = module(layout.file);
        let Some((wgsl, span)) = wgsl_params(&m) else {
            out.push(format!("{}: {}.wgsl has no struct Params", layout.rust, layout.file));
            continue;
        };
        if wgsl.len() != layout.fields.len() {
            out.push(format!("{}: {} fields, {}.wgsl's Params has {}", layout.rust, layout.fields.len(), layout.file, wgsl.len()));
        }
        for (i, (r, w)) in layout.fields.iter().zip(&wgsl).enumerate() {
            if r != w {
                out.push(format!("{} field {i}: Rust {r:?}, {}.wgsl {w:?}", layout.rust, layout.file));
            }
        }
        if span != layout.size {
            out.push(format!("{}: {} bytes, {}.wgsl's Params {span}", layout.rust, layout.size, layout.file));
        }
    }
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
fn every_shader_with_params_has_a_rust_struct() {
    for (file, _) in sources() {
        if wgsl_params(&module(file)).is_some() {
            assert!(LAYOUTS.iter().any(|l| l.file == file), "{file}.wgsl has a Params struct but no Rust mirror in gpu::params");
        }
    }
}
