//! Every struct the GPU reads, Rust (`qklab::gpu::params`) against WGSL as
//! naga reflects the shader the engine compiles: each kernel's parameter
//! struct against its file's `Params`, and the batch segment `Seg` against
//! every `struct Seg` a kernel compiles (one definition, segments.wgsl,
//! prepended where needed; a copy written into a kernel is checked too).
//! The same fields in the same order, with the same names, scalar types
//! and offsets, and the same size; and the constants both sides name (flag
//! bits, the matvec row limit) equal.
//!
//! Likewise every buffer binding: `qklab::gpu::bindings` names each
//! shader's storage buffers with their binding numbers; each must be the
//! shader's variable of that name at that number, every storage buffer of
//! a shader must have one, and the binding table in the shader's opening
//! comment must list what naga sees.

use naga::{AddressSpace, Literal, Module, ScalarKind, TypeInner};
use qklab::gpu::bindings::{self, Binding};
use qklab::gpu::kernels::{sources, PRELUDES};
use qklab::gpu::params::{Field, Layout, LAYOUTS, SEG, SHARED_CONSTANTS};

/// A kernel file as the engine composes it, or a prelude on its own.
fn module(file: &str) -> Module {
    let sources = sources();
    let src = match sources.iter().find(|(n, _)| *n == file) {
        Some((_, src)) => src.clone(),
        None => PRELUDES
            .iter()
            .find(|(n, _)| *n == file)
            .unwrap_or_else(|| panic!("no shader file {file}.wgsl"))
            .1
            .to_string(),
    };
    naga::front::wgsl::parse_str(&src)
        .unwrap_or_else(|e| panic!("{file}: {}", e.emit_to_string(&src)))
}

/// The fields of the WGSL struct `name`, and its size.
fn wgsl_struct(m: &Module, name: &str) -> Option<(Vec<Field>, u32)> {
    m.types.iter().find_map(|(_, ty)| {
        let TypeInner::Struct { members, span } = &ty.inner else {
            return None;
        };
        (ty.name.as_deref() == Some(name)).then(|| {
            let fields = members
                .iter()
                .map(|mem| {
                    let ty = match m.types[mem.ty].inner {
                        TypeInner::Scalar(s) if s.kind == ScalarKind::Uint && s.width == 4 => "u32",
                        TypeInner::Scalar(s) if s.kind == ScalarKind::Float && s.width == 4 => {
                            "f32"
                        }
                        ref other => panic!("a {name} field of type {other:?}"),
                    };
                    let name: &'static str =
                        Box::leak(mem.name.clone().unwrap_or_default().into_boxed_str());
                    Field {
                        name,
                        ty,
                        offset: mem.offset,
                    }
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
        out.push(format!(
            "{}: {file}.wgsl has no struct {}",
            layout.rust, layout.wgsl
        ));
        return;
    };
    let what = format!("{file}.wgsl's {}", layout.wgsl);
    if wgsl.len() != layout.fields.len() {
        out.push(format!(
            "{}: {} fields, {what} has {}",
            layout.rust,
            layout.fields.len(),
            wgsl.len()
        ));
    }
    for (i, (r, w)) in layout.fields.iter().zip(&wgsl).enumerate() {
        if r != w {
            out.push(format!(
                "{} field {i}: Rust {r:?}, {what} {w:?}",
                layout.rust
            ));
        }
    }
    if span != layout.size {
        out.push(format!(
            "{}: {} bytes, {what} {span}",
            layout.rust, layout.size
        ));
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
        let found = m
            .constants
            .iter()
            .find(|(_, c)| c.name.as_deref() == Some(*name))
            .map(|(_, c)| &m.global_expressions[c.init]);
        match found {
            Some(naga::Expression::Literal(Literal::U32(v))) if v == value => {}
            other => out.push(format!(
                "{file}.wgsl const {name}: {other:?}, Rust says {value}"
            )),
        }
    }
    out
}

#[test]
fn rust_params_mirror_every_wgsl_params_struct() {
    let bad = mismatches();
    assert!(
        bad.is_empty(),
        "kernel parameters disagree:\n  {}",
        bad.join("\n  ")
    );
}

#[test]
fn the_kernels_that_take_segments_compile_the_rust_seg() {
    // Both batched attention kernels read `array<Seg>`; the check above
    // covers them only if their compiled source has the struct.
    for file in ["attention", "lightning"] {
        assert!(
            wgsl_struct(&module(file), "Seg").is_some(),
            "{file}.wgsl compiles no struct Seg"
        );
    }
}

#[test]
fn every_shader_with_params_has_a_rust_struct() {
    for (file, _) in sources() {
        if wgsl_params(&module(file)).is_some() {
            assert!(
                LAYOUTS.iter().any(|l| l.file == file),
                "{file}.wgsl has a Params struct but no Rust mirror in gpu::params"
            );
        }
    }
}

/// A shader's bindings in group 0 as naga sees them: (number, name, whether
/// it is a storage buffer), by number.
fn wgsl_bindings(m: &Module) -> Vec<(u32, String, bool)> {
    let mut out: Vec<_> = m
        .global_variables
        .iter()
        .filter_map(|(_, g)| {
            let b = g.binding.as_ref()?;
            assert_eq!(b.group, 0, "{:?} is bound outside group 0", g.name);
            Some((
                b.binding,
                g.name.clone().unwrap_or_default(),
                matches!(g.space, AddressSpace::Storage { .. }),
            ))
        })
        .collect();
    out.sort();
    out
}

/// The binding table a shader's opening comment gives: the lines after
/// `Bindings (group 0):` of the form `//   N  name : ...`.
fn comment_table(src: &str) -> Vec<(u32, String)> {
    let mut lines = src
        .lines()
        .skip_while(|l| !l.contains("Bindings (group 0):"))
        .skip(1);
    let mut out = Vec::new();
    while let Some(row) = lines.next().and_then(|l| l.strip_prefix("//")) {
        let mut words = row.split_whitespace();
        let (Some(n), Some(name)) = (words.next().and_then(|n| n.parse().ok()), words.next())
        else {
            break;
        };
        out.push((n, name.trim_end_matches(':').to_string()));
    }
    out
}

#[test]
fn named_bindings_match_every_shader() {
    let mut bad = Vec::new();
    for (file, src) in sources() {
        let wgsl = wgsl_bindings(&module(file));
        let rust: Vec<&Binding> = bindings::ALL.iter().filter(|b| b.file == file).collect();
        for b in &rust {
            match wgsl.iter().find(|(_, name, _)| name == b.name) {
                Some((n, _, true)) if *n == b.index => {}
                Some((n, _, storage)) => bad.push(format!(
                    "{file}.wgsl: Rust binds {} at {}, the shader at {n} (storage: {storage})",
                    b.name, b.index
                )),
                None => bad.push(format!(
                    "{file}.wgsl has no binding {} (Rust: {})",
                    b.name, b.index
                )),
            }
        }
        for (n, name, storage) in &wgsl {
            if *storage && !rust.iter().any(|b| b.name == name) {
                bad.push(format!(
                    "{file}.wgsl: storage buffer {name} (binding {n}) has no name in gpu::bindings"
                ));
            }
            if !*storage && *n != 0 {
                bad.push(format!("{file}.wgsl: {name} at binding {n}; the recorder binds only Params (0) and storage buffers"));
            }
        }
        let table = comment_table(&src);
        let seen: Vec<(u32, String)> = wgsl.iter().map(|(n, name, _)| (*n, name.clone())).collect();
        if table != seen {
            bad.push(format!(
                "{file}.wgsl: binding table comment {table:?}, the shader declares {seen:?}"
            ));
        }
    }
    assert!(bad.is_empty(), "bindings disagree:\n  {}", bad.join("\n  "));
}
