// Matrix products against packed weights (with packed.wgsl), PyTorch's
// layout: y = x W^T for activations x [M, K] (f32) and weights W [N, K].
// A weight split into row chunks (tensors larger than one storage binding)
// runs once per chunk, each writing its own columns of y (y_col0).
//
//   y[y_row0 + m, y_col0 + n] (+)= sum_k x[x_row0 + m, k] W[n, k]
//
// Bindings (group 0):
//   0  p : Params      uniform
//   1  x : array<f32>  read        activations, rows of x_stride
//   2  w : array<u32>  read        packed weights [N, K] (this chunk)
//   3  y : array<f32>  read_write  output, rows of y_stride
//
// `accumulate` = 1 adds into y, which folds the residual connection into
// the output projections.

struct Params {
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

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn store(m: u32, n: u32, v: f32) {
    let i = (p.y_row0 + m) * p.y_stride + p.y_col0 + n;
    if (p.accumulate == 1u) {
        y[i] += v;
    } else {
        y[i] = v;
    }
}

// Tiled: a 16 x 16 workgroup computes a 128 x 128 tile of y, each thread
// 8 x 8 values in registers. Thread (tx, ty) owns rows ty + 16 i and
// columns tx + 16 j, so neighbouring threads read neighbouring shared
// words (no bank conflicts) and write neighbouring outputs.
const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 16u;
const TM: u32 = 8u;
const TN: u32 = 8u;

// 2 x 16 x 128 x 4 bytes = 16 KiB, WebGPU's guaranteed workgroup storage.
var<workgroup> xs: array<array<f32, BM>, BK>;
var<workgroup> ws: array<array<f32, BN>, BK>;

@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    var acc: array<array<f32, TN>, TM>;
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        // Each thread stages 8 values of each tile; consecutive threads
        // read consecutive k of one row.
        for (var r = 0u; r < 8u; r++) {
            let e = tid + 256u * r;
            let row = e / BK;
            let kk = e % BK;
            let gk = k0 + kk;
            var xv = 0.0;
            if (m0 + row < p.m && gk < p.k) {
                xv = x[(p.x_row0 + m0 + row) * p.x_stride + gk];
            }
            xs[kk][row] = xv;
            var wv = 0.0;
            if (n0 + row < p.n && gk < p.k) {
                wv = w_at((n0 + row) * p.k + gk);
            }
            ws[kk][row] = wv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < BK; kk++) {
            var a: array<f32, TM>;
            var b: array<f32, TN>;
            for (var i = 0u; i < TM; i++) {
                a[i] = xs[kk][lid.y + 16u * i];
            }
            for (var j = 0u; j < TN; j++) {
                b[j] = ws[kk][lid.x + 16u * j];
            }
            for (var i = 0u; i < TM; i++) {
                for (var j = 0u; j < TN; j++) {
                    acc[i][j] = fma(a[i], b[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < TM; i++) {
        let m = m0 + lid.y + 16u * i;
        for (var j = 0u; j < TN; j++) {
            let n = n0 + lid.x + 16u * j;
            if (m < p.m && n < p.n) {
                store(m, n, acc[i][j]);
            }
        }
    }
}

// For a few rows of x (decode): bandwidth-bound, so each weight is read
// once. A workgroup computes 8 outputs for up to MV_ROWS rows; 32 threads
// share each output's dot product and reduce through workgroup memory.
const MV_ROWS: u32 = 4u;
const MV_OUT: u32 = 8u;
var<workgroup> partial: array<array<f32, 256>, MV_ROWS>;

@compute @workgroup_size(256)
fn matvec(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let lane = lid.x % 32u;
    let n = (wg.x + wg.y * groups.x) * MV_OUT + lid.x / 32u;
    var acc: array<f32, MV_ROWS>;
    if (n < p.n) {
        for (var k = lane; k < p.k; k += 32u) {
            let wv = w_at(n * p.k + k);
            for (var m = 0u; m < p.m; m++) {
                acc[m] = fma(x[(p.x_row0 + m) * p.x_stride + k], wv, acc[m]);
            }
        }
    }
    for (var m = 0u; m < MV_ROWS; m++) {
        partial[m][lid.x] = acc[m];
    }
    workgroupBarrier();
    for (var s = 16u; s > 0u; s >>= 1u) {
        if (lane < s) {
            for (var m = 0u; m < MV_ROWS; m++) {
                partial[m][lid.x] += partial[m][lid.x + s];
            }
        }
        workgroupBarrier();
    }
    if (lane == 0u && n < p.n) {
        for (var m = 0u; m < p.m; m++) {
            store(m, n, partial[m][lid.x]);
        }
    }
}
