//! Every kernel's WGSL (as the engine composes it from shaders/) parses and
//! validates with naga under the WebGPU baseline (no optional features), so
//! a broken kernel fails here rather than in a user's browser; and every
//! file in shaders/ is used by some kernel, as its own file or as a prelude
//! prepended to it (packed.wgsl, segments.wgsl).

#[test]
fn every_kernel_validates_for_plain_webgpu() {
    let sources = qklab::gpu::kernels::sources();
    for (name, source) in &sources {
        let module = naga::front::wgsl::parse_str(source)
            .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
        naga::valid::Validator::new(
            naga::valid::ValidationFlags::all(),
            naga::valid::Capabilities::empty(),
        )
        .validate(&module)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)));
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let prelude = qklab::gpu::kernels::PRELUDES
            .iter()
            .any(|(n, _)| *n == stem);
        if path.extension().is_some_and(|e| e == "wgsl") && !prelude {
            assert!(
                sources.iter().any(|(n, _)| *n == stem),
                "{} is not used by any kernel",
                path.display()
            );
        }
    }
}
