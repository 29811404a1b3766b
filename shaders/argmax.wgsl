// Greedy decoding on the GPU: the index of the largest logit of a row
// (the first on ties, as the CPU reference does), so a decode step reads
// back 4 bytes per sequence instead of a vocabulary of logits. Workgroup
// w takes row `row + w` and writes slot `slot + w`: one dispatch serves a
// whole batch.
//
// Bindings (group 0):
//   0  p      : Params      uniform
//   1  logits : array<f32>  read        rows of width n
//   2  out    : array<u32>  read_write  out[slot + w] = argmax of row row + w

struct Params {
    n: u32,
    row: u32,
    slot: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<u32>;

var<workgroup> best_v: array<f32, 256>;
var<workgroup> best_i: array<u32, 256>;

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(256)
fn argmax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let row = p.row + wg.x;
    var bv = bitcast<f32>(0xff7fffffu); // -f32::MAX, exactly
    var bi = 0xffffffffu;
    for (var i = lid.x; i < p.n; i += 256u) {
        let v = logits[row * p.n + i];
        if (better(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid.x] = bv;
    best_i[lid.x] = bi;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid.x < s && better(best_v[lid.x + s], best_i[lid.x + s], best_v[lid.x], best_i[lid.x])) {
            best_v[lid.x] = best_v[lid.x + s];
            best_i[lid.x] = best_i[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[p.slot + wg.x] = best_i[0];
    }
}
