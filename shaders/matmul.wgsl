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

// Tiled: a workgroup of 256 computes a 128 x 128 tile of y, each thread
// an 8 x 8 block (rows ty * 4 .. + 4 and 64 + ty * 4 .. + 4, the same
// split of columns) in 16 named vec4 accumulators: arrays indexed in loops
// may be kept in memory rather than registers by some compilers, which
// costs an order of magnitude. The split keeps a warp's vector reads of
// a k-slice contiguous, free of bank conflicts (adjacent 8-wide blocks
// were 2-way conflicted; 23.9 against 21.9 TFLOP/s on an H200).
const BM: u32 = 128u;
const BN: u32 = 128u;
const BK: u32 = 16u;
const TM: u32 = 8u;

// k-major tiles, 2 x 16 x 128 x 4 bytes = 16 KiB, WebGPU's guaranteed
// workgroup storage.
var<workgroup> xs: array<array<vec4<f32>, 32>, BK>;
var<workgroup> ws: array<array<vec4<f32>, 32>, BK>;

// Row m of y: lo at columns n .. n + 4, hi at n + 64 .. n + 68.
fn store_row(m: u32, n: u32, lo: vec4<f32>, hi: vec4<f32>) {
    if (m >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        if (n + j < p.n) {
            store(m, n + j, lo[j]);
        }
        if (n + 64u + j < p.n) {
            store(m, n + 64u + j, hi[j]);
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

// Eight consecutive values of a row (a struct, not an array: arrays
// indexed in loops may be kept in memory).
struct Run {
    lo: vec4<f32>,
    hi: vec4<f32>,
}

// x[m, k .. k + 8]: one bounds test for the run inside the matrix
// rather than one a value (the staging is a third of the instructions
// otherwise), zeros past it.
fn x8(m: u32, k: u32) -> Run {
    if (m < p.m && k + 8u <= p.k) {
        let i = (p.x_row0 + m) * p.x_stride + k;
        return Run(vec4<f32>(x[i], x[i + 1u], x[i + 2u], x[i + 3u]), vec4<f32>(x[i + 4u], x[i + 5u], x[i + 6u], x[i + 7u]));
    }
    return Run(vec4<f32>(x_at(m, k), x_at(m, k + 1u), x_at(m, k + 2u), x_at(m, k + 3u)),
                               vec4<f32>(x_at(m, k + 4u), x_at(m, k + 5u), x_at(m, k + 6u), x_at(m, k + 7u)));
}

// W[n, k .. k + 8], the same way; 16-bit weights in four whole words
// where the run starts on a word.
fn w8(n: u32, k: u32) -> Run {
    if (n < p.n && k + 8u <= p.k) {
        let i = n * p.k + k;
        if (W_DTYPE != 0u && i % 2u == 0u) {
            let a = w[i / 2u];
            let b = w[i / 2u + 1u];
            let c = w[i / 2u + 2u];
            let d = w[i / 2u + 3u];
            return Run(
                vec4<f32>(half_at(a & 0xffffu), half_at(a >> 16u), half_at(b & 0xffffu), half_at(b >> 16u)),
                vec4<f32>(half_at(c & 0xffffu), half_at(c >> 16u), half_at(d & 0xffffu), half_at(d >> 16u)));
        }
        return Run(vec4<f32>(w_at(i), w_at(i + 1u), w_at(i + 2u), w_at(i + 3u)),
                                   vec4<f32>(w_at(i + 4u), w_at(i + 5u), w_at(i + 6u), w_at(i + 7u)));
    }
    return Run(vec4<f32>(wt_at(n, k), wt_at(n, k + 1u), wt_at(n, k + 2u), wt_at(n, k + 3u)),
                               vec4<f32>(wt_at(n, k + 4u), wt_at(n, k + 5u), wt_at(n, k + 6u), wt_at(n, k + 7u)));
}

@compute @workgroup_size(256)
fn matmul(@builtin(local_invocation_index) tid: u32, @builtin(workgroup_id) wg: vec3<u32>) {
    // Thread tid's place (ty, tx) in the 16 x 16 grid of blocks: warps of
    // 4 x 8 threads (rows x columns) rather than 2 x 16, so that a warp
    // reads 4 + 8 distinct vectors of each k-slice instead of 2 + 16.
    let warp = tid / 32u;
    let lane = tid % 32u;
    let ty = (warp / 2u) * 4u + lane / 8u;
    let tx = (warp % 2u) * 8u + lane % 8u;
    let m0 = wg.y * BM;
    let n0 = wg.x * BN;
    // Staging: thread t moves 8 consecutive k of row t / 2 of each tile.
    // The next tile's values are fetched into registers while the current
    // one is multiplied, so global latency hides behind arithmetic.
    let row = tid / 2u;
    let kh = (tid % 2u) * 8u;
    let xm = m0 + row;
    let wn = n0 + row;
    var xr = x8(xm, kh);
    var wr = w8(wn, kh);
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
            xs[kh + j][row / 4u][row % 4u] = xr.lo[j];
            xs[kh + 4u + j][row / 4u][row % 4u] = xr.hi[j];
            ws[kh + j][row / 4u][row % 4u] = wr.lo[j];
            ws[kh + 4u + j][row / 4u][row % 4u] = wr.hi[j];
        }
        workgroupBarrier();
        // Past the end these read zeros.
        xr = x8(xm, k0 + BK + kh);
        wr = w8(wn, k0 + BK + kh);
        for (var kk = 0u; kk < BK; kk++) {
            let a0 = xs[kk][ty];
            let a1 = xs[kk][ty + 16u];
            let b0 = ws[kk][tx];
            let b1 = ws[kk][tx + 16u];
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
    let n = n0 + tx * 4u;
    let m = m0 + ty * 4u;
    store_row(m, n, c00, c01);
    store_row(m + 1u, n, c10, c11);
    store_row(m + 2u, n, c20, c21);
    store_row(m + 3u, n, c30, c31);
    store_row(m + 64u, n, c40, c41);
    store_row(m + 65u, n, c50, c51);
    store_row(m + 66u, n, c60, c61);
    store_row(m + 67u, n, c70, c71);
}

// For a few rows of x (decode): bandwidth-bound, so each weight is read
// once, in whole 32-bit words. A workgroup computes 8 outputs for up to
// MV_ROWS rows; the 32 lanes of each output read consecutive words (a
// warp's read is one contiguous stretch) and reduce through workgroup
// memory. Rows sit in the components of a vec4: accumulators in an
// array indexed in a loop may be kept in memory.
const MV_ROWS: u32 = 4u;
const MV_OUT: u32 = 8u;
var<workgroup> partial: array<vec4<f32>, 256>;

// x at column k of the MV_ROWS rows (rows past p.m repeat the last).
fn x4(k: u32) -> vec4<f32> {
    let last = p.m - 1u;
    return vec4<f32>(
        x[(p.x_row0) * p.x_stride + k],
        x[(p.x_row0 + min(1u, last)) * p.x_stride + k],
        x[(p.x_row0 + min(2u, last)) * p.x_stride + k],
        x[(p.x_row0 + min(3u, last)) * p.x_stride + k],
    );
}

@compute @workgroup_size(256)
fn matvec(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>,
          @builtin(num_workgroups) groups: vec3<u32>) {
    let lane = lid.x % 32u;
    let n = (wg.x + wg.y * groups.x) * MV_OUT + lid.x / 32u;
    var acc = vec4<f32>();
    if (n < p.n) {
        let xb = p.x_row0 * p.x_stride;
        if (W_DTYPE != 0u && p.k % 2u == 0u) {
            // Two 16-bit weights a word; rows start on a word.
            let words = p.k / 2u;
            let row = n * words;
            if (p.m == 1u) {
                // Four words in flight a lane: one at a time leaves the
                // memory system idle between a load and its use.
                var a = 0.0;
                var j = lane;
                for (; j + 96u < words; j += 128u) {
                    let w0 = w[row + j];
                    let w1 = w[row + j + 32u];
                    let w2 = w[row + j + 64u];
                    let w3 = w[row + j + 96u];
                    a = fma(x[xb + 2u * j], half_at(w0 & 0xffffu), a);
                    a = fma(x[xb + 2u * j + 1u], half_at(w0 >> 16u), a);
                    a = fma(x[xb + 2u * j + 64u], half_at(w1 & 0xffffu), a);
                    a = fma(x[xb + 2u * j + 65u], half_at(w1 >> 16u), a);
                    a = fma(x[xb + 2u * j + 128u], half_at(w2 & 0xffffu), a);
                    a = fma(x[xb + 2u * j + 129u], half_at(w2 >> 16u), a);
                    a = fma(x[xb + 2u * j + 192u], half_at(w3 & 0xffffu), a);
                    a = fma(x[xb + 2u * j + 193u], half_at(w3 >> 16u), a);
                }
                for (; j < words; j += 32u) {
                    let word = w[row + j];
                    a = fma(x[xb + 2u * j], half_at(word & 0xffffu), a);
                    a = fma(x[xb + 2u * j + 1u], half_at(word >> 16u), a);
                }
                acc.x = a;
            } else {
                for (var j = lane; j < words; j += 32u) {
                    let word = w[row + j];
                    acc = fma(x4(2u * j), vec4<f32>(half_at(word & 0xffffu)), acc);
                    acc = fma(x4(2u * j + 1u), vec4<f32>(half_at(word >> 16u)), acc);
                }
            }
        } else {
            for (var k = lane; k < p.k; k += 32u) {
                acc = fma(x4(k), vec4<f32>(w_at(n * p.k + k)), acc);
            }
        }
    }
    partial[lid.x] = acc;
    for (var s = 16u; s > 0u; s >>= 1u) {
        workgroupBarrier();
        if (lane < s) {
            partial[lid.x] += partial[lid.x + s];
        }
    }
    workgroupBarrier();
    if (lane == 0u && n < p.n) {
        let sum = partial[lid.x];
        for (var m = 0u; m < p.m; m++) {
            store(m, n, sum[m]);
        }
    }
}
