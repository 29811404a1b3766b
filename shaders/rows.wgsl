// Moves whole rows between buffers by a table. The batched engine packs
// the new tokens of every sequence into one block of rows: this scatters
// their keys and values (and captured queries) into each sequence's
// cache, and gathers each sequence's last row for the LM head.
//
// Bindings (group 0):
//   0  p   : Params             uniform
//   1  map : array<vec2<u32>>   read        [map0 + count]: (source row, destination row)
//   2  src : array<f32>         read        rows of `width`
//   3  dst : array<f32>         read_write  rows of `width`

struct Params {
    width: u32,
    count: u32,
    map0: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> map: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;

const WORKGROUP: u32 = 256u;

@compute @workgroup_size(WORKGROUP)
fn copy_rows(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = gid.x + gid.y * groups.x * WORKGROUP;
    let r = i / p.width;
    if (r >= p.count) {
        return;
    }
    let c = i % p.width;
    let m = map[p.map0 + r];
    dst[m.y * p.width + c] = src[m.x * p.width + c];
}
