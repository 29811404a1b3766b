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
// an 8 x 8 block (rows ty * 8 .., columns tx * 8 ..) in 16 named vec4
// accumulators: arrays indexed in loops may be kept in memory rather than
// registers by some compilers, which costs an order of magnitude.
const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 16u;
const TM: u32 = 8u;

// k-major tiles, 2 x 16 x 128 x 4 bytes = 16 KiB, WebGPU's guaranteed
// workgroup storage.
var<workgroup> xs: array<array<vec4<f32>, 32>, BK>;
var<workgroup> ws: array<array<vec4<f32>, 32>, BK>;

fn store_row(m: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (n + j < p.n) {
            store(m, n + j, lo[j]);
        }
        if (n + 4u + j < p.n) {
            store(m, n + 4u + j, hi[j]);
        }
    }
}

fn x_at(m: u32, k: u32) -> f32 {
    if (m < p.m && k < p.k) {
        return x[(p.x_row0 + m) * p.x_stride + k];
    }
    return 0.0;
}

fn wt_at(n: u32, k: u32) -> f32 {
    if (n < p.n && k < p.k) {
        return w_at(n * p.k + k);
    }
    return 0.0;
}

@compute @workgroup_size(16, 16)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let tid = lid.y * 16u + lid.x;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    // Staging: thread t moves 8 consecutive k of row t / 2 of each tile.
    // The next tile's values are fetched into registers while the current
    // one is multiplied, so global latency hides behind arithmetic.
    let row = tid / 2u;
    let kh = (tid % 2u) * 8u;
    let xm = m0 + row;
    let wn = n0 + row;
    var xr0 = vec4<f32>(x_at(xm, kh), x_at(xm, kh + 1u), x_at(xm, kh + 2u), x_at(xm, kh + 3u));
    var xr1 = vec4<f32>(x_at(xm, kh + 4u), x_at(xm, kh + 5u), x_at(xm, kh + 6u), x_at(xm, kh + 7u));
    var wr0 = vec4<f32>(wt_at(wn, kh), wt_at(wn, kh + 1u), wt_at(wn, kh + 2u), wt_at(wn, kh + 3u));
    var wr1 = vec4<f32>(wt_at(wn, kh + 4u), wt_at(wn, kh + 5u), wt_at(wn, kh + 6u), wt_at(wn, kh + 7u));
    var c00 = vec4<f32>();
    var c01 = vec4<f32>();
    var c10 = vec4<f32>();
    var c11 = vec4<f32>();
    var c20 = vec4<f32>();
    var c21 = vec4<f32>();
    var c30 = vec4<f32>();
    var c31 = vec4<f32>();
    var c40 = vec4<f32>();
    var c41 = vec4<f32>();
    var c50 = vec4<f32>();
    var c51 = vec4<f32>();
    var c60 = vec4<f32>();
    var c61 = vec4<f32>();
    var c70 = vec4<f32>();
    var c71 = vec4<f32>();
    for (var k0 = 0u; k0 < p.k; k0 += BK) {
        for (var j = 0u; j < 4u; j++) {
            xs[kh + j][row / 4u][row % 4u] = xr0[j];
            xs[kh + 4u + j][row / 4u][row % 4u] = xr1[j];
            ws[kh + j][row / 4u][row % 4u] = wr0[j];
            ws[kh + 4u + j][row / 4u][row % 4u] = wr1[j];
        }
        workgroupBarrier();
        // Past the end these read zeros (x_at, wt_at guard every index).
        let kn = k0 + BK + kh;
        xr0 = vec4<f32>(x_at(xm, kn), x_at(xm, kn + 1u), x_at(xm, kn + 2u), x_at(xm, kn + 3u));
        xr1 = vec4<f32>(x_at(xm, kn + 4u), x_at(xm, kn + 5u), x_at(xm, kn + 6u), x_at(xm, kn + 7u));
        wr0 = vec4<f32>(wt_at(wn, kn), wt_at(wn, kn + 1u), wt_at(wn, kn + 2u), wt_at(wn, kn + 3u));
        wr1 = vec4<f32>(wt_at(wn, kn + 4u), wt_at(wn, kn + 5u), wt_at(wn, kn + 6u), wt_at(wn, kn + 7u));
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = xs[kk][lid.y * 2u];
            let a1 = xs[kk][lid.y * 2u + 1u];
            let b0 = ws[kk][lid.x * 2u];
            let b1 = ws[kk][lid.x * 2u + 1u];
            c00 = fma(vec4<f32>(a0.x), b0, c00);
            c01 = fma(vec4<f32>(a0.x), b1, c01);
            c10 = fma(vec4<f32>(a0.y), b0, c10);
            c11 = fma(vec4<f32>(a0.y), b1, c11);
            c20 = fma(vec4<f32>(a0.z), b0, c20);
            c21 = fma(vec4<f32>(a0.z), b1, c21);
            c30 = fma(vec4<f32>(a0.w), b0, c30);
            c31 = fma(vec4<f32>(a0.w), b1, c31);
            c40 = fma(vec4<f32>(a1.x), b0, c40);
            c41 = fma(vec4<f32>(a1.x), b1, c41);
            c50 = fma(vec4<f32>(a1.y), b0, c50);
            c51 = fma(vec4<f32>(a1.y), b1, c51);
            c60 = fma(vec4<f32>(a1.z), b0, c60);
            c61 = fma(vec4<f32>(a1.z), b1, c61);
            c70 = fma(vec4<f32>(a1.w), b0, c70);
            c71 = fma(vec4<f32>(a1.w), b1, c71);
        }
        workgroupBarrier();
    }
    let n = n0 + lid.x * 8u;
    store_row(m0 + lid.y * TM + 0u, n, c00, c01);
    store_row(m0 + lid.y * TM + 1u, n, c10, c11);
    store_row(m0 + lid.y * TM + 2u, n, c20, c21);
    store_row(m0 + lid.y * TM + 3u, n, c30, c31);
    store_row(m0 + lid.y * TM + 4u, n, c40, c41);
    store_row(m0 + lid.y * TM + 5u, n, c50, c51);
    store_row(m0 + lid.y * TM + 6u, n, c60, c61);
    store_row(m0 + lid.y * TM + 7u, n, c70, c71);
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
