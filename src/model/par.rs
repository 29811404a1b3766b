//! Work split across the cores natively (rayon), run in order in the
//! browser, where wasm32-unknown-unknown has no threads on stable Rust.

/// Below this many multiply-adds a product is not worth splitting.
const MIN_TASK_WORK: usize = 1 << 20;

/// `f` over every task, results in task order.
pub fn map_tasks<T: Sync, R: Send>(tasks: &[T], f: impl Fn(&T) -> R + Sync + Send) -> Vec<R> {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        tasks.par_iter().map(f).collect()
    }
    #[cfg(target_arch = "wasm32")]
    tasks.iter().map(f).collect()
}

/// Rows per block when `rows` rows cost `work` in all: one block per
/// thread once the work pays for it.
pub fn rows_per_task(rows: usize, work: usize) -> usize {
    let threads = threads();
    if threads <= 1 || work < MIN_TASK_WORK || rows < 2 * threads {
        return rows.max(1);
    }
    rows.div_ceil(threads)
}

/// `f(first_row, block)` over blocks of `rows_per_block` rows of `y`
/// (rows of `width`), in parallel natively.
pub fn for_row_blocks(
    y: &mut [f32],
    width: usize,
    rows_per_block: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    let chunk = rows_per_block * width;
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        y.par_chunks_mut(chunk)
            .enumerate()
            .for_each(|(i, block)| f(i * rows_per_block, block));
    }
    #[cfg(target_arch = "wasm32")]
    y.chunks_mut(chunk)
        .enumerate()
        .for_each(|(i, block)| f(i * rows_per_block, block));
}

/// [`for_row_blocks`] over three buffers of the same rows at once (each
/// with its own width): `f(first_row, [blocks])`.
pub fn for_row_blocks3(
    bufs: [(&mut [f32], usize); 3],
    rows_per_block: usize,
    f: impl Fn(usize, [&mut [f32]; 3]) + Sync + Send,
) {
    let [(a, wa), (b, wb), (c, wc)] = bufs;
    let per = rows_per_block.max(1);
    #[cfg(not(target_arch = "wasm32"))]
    {
        use rayon::prelude::*;
        a.par_chunks_mut(per * wa)
            .zip(b.par_chunks_mut(per * wb))
            .zip(c.par_chunks_mut(per * wc))
            .enumerate()
            .for_each(|(i, ((a, b), c))| f(i * per, [a, b, c]));
    }
    #[cfg(target_arch = "wasm32")]
    a.chunks_mut(per * wa)
        .zip(b.chunks_mut(per * wb))
        .zip(c.chunks_mut(per * wc))
        .enumerate()
        .for_each(|(i, ((a, b), c))| f(i * per, [a, b, c]));
}

/// Threads the CPU engine uses.
pub fn threads() -> usize {
    #[cfg(not(target_arch = "wasm32"))]
    return rayon::current_num_threads();
    #[cfg(target_arch = "wasm32")]
    1
}
