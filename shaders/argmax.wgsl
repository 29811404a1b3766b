// Greedy decoding on the GPU: the index of the largest logit of a row
// (the first on ties, as the CPU reference does), so a decode step reads
// back 4 bytes per sequence instead of a vocabulary of logits. Workgroup
// w takes row `row + w` and writes slot `slot + w`: one dispatch serves a
// whole batch. A row holding NaN or infinity gives 0xffffffff, an id no
// vocabulary has, so the host can say the model broke rather than print
// whatever token won among the finite logits.
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
var<workgroup> broken: array<u32, 256>;

// Exponent all ones: NaN or an infinity. Read from the bits, since WGSL
// lets an implementation assume floats are finite.
fn non_finite(v: f32) -> bool {
    return (bitcast<u32>(v) & 0x7f800000u) == 0x7f800000u;
}

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return v > bv || (v == bv && i < bi);
}

@compute @workgroup_size(256)
fn argmax(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let row = p.row + wg.x;
    var bv = bitcast<f32>(0xff7fffffu); // -f32::MAX, exactly
    var bi = 0xffffffffu;
    var bad = 0u;
    for (var i = lid.x; i < p.n; i += 256u) {
        let v = logits[row * p.n + i];
        if (non_finite(v)) {
            bad = 1u;
        }
        if (better(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid.x] = bv;
    best_i[lid.x] = bi;
    broken[lid.x] = bad;
    workgroupBarrier();
    for (var s = 128u; s > 0u; s >>= 1u) {
        if (lid.x < s && better(best_v[lid.x + s], best_i[lid.x + s], best_v[lid.x], best_i[lid.x])) {
            best_v[lid.x] = best_v[lid.x + s];
            best_i[lid.x] = best_i[lid.x + s];
        }
        if (lid.x < s) {
            broken[lid.x] = broken[lid.x] | broken[lid.x + s];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        out[p.slot + wg.x] = select(best_i[0], 0xffffffffu, broken[0] != 0u);
    }
}
