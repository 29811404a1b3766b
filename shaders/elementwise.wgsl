// Element-wise steps between the matrix products: the SwiGLU activation,
// the sigmoid output gates and a plain SiLU (the JetBlock's kernel
// generator).
//
// Bindings (group 0):
//   0  p : Params      uniform
//   1  b : array<f32>  read        second operand (swiglu: up, gate: gate logits; silu: none)
//   2  a : array<f32>  read_write  first operand, updated in place

struct Params {
    n: u32,
    width: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> a: array<f32>;

const WORKGROUP: u32 = 256u;

fn index(gid: vec3<u32>, groups: vec3<u32>) -> u32 {
    return gid.x + gid.y * groups.x * WORKGROUP;
}

// a = silu(a) * b, with silu(g) = g / (1 + exp(-g)).
@compute @workgroup_size(WORKGROUP)
fn swiglu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < p.n) {
        let g = a[i];
        a[i] = g / (1.0 + exp(-g)) * b[i];
    }
}

// a = a * sigmoid(b)
@compute @workgroup_size(WORKGROUP)
fn gate(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < p.n) {
        a[i] = a[i] / (1.0 + exp(-b[i]));
    }
}

// a = silu(a)
@compute @workgroup_size(WORKGROUP)
fn silu(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
    let i = index(gid, groups);
    if (i < p.n) {
        let g = a[i];
        a[i] = g / (1.0 + exp(-g));
    }
}
