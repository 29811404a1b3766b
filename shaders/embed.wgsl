// Embedding gather (with packed.wgsl): x[t] = E[ids[t]] for the rows of
// E held by this chunk (row0 .. row0 + rows); other ids are left to the
// chunks that hold them.
//
// Bindings (group 0):
//   0  p   : Params      uniform
//   1  ids : array<u32>  read
//   2  w   : array<u32>  read        packed embedding rows [rows, width]
//   3  x   : array<f32>  read_write  [tokens, width]

struct Params {
    tokens: u32,
    width: u32,
    row0: u32,
    rows: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> ids: array<u32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256)
fn embed(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * 256u;
    if (i >= p.tokens * p.width) {
        return;
    }
    let id = ids[i / p.width];
    if (id >= p.row0 && id < p.row0 + p.rows) {
        x[i] = w_at((id - p.row0) * p.width + i % p.width);
    }
}
