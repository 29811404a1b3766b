//! The recorded forward pass: embedding, every layer (norm, its mixer,
//! norm, MLP) and the LM head, as dispatches into one recorder. What is
//! the same for every mixer (projections, head preparation, output
//! projection) lives here; each mixer's own part is in `mixers/`.

use super::batch::GpuBatch;
use super::model::GpuModel;
use super::pass::{Layout, Piece};
use crate::config::{LogitsScaling, Mixer};
use crate::gpu::ops::{self, HeadPrep, Rows, Spare};
use crate::gpu::recorder::Recorder;
use crate::model::mixer::{rope_on, scales_queries};
use crate::names::Proj;

impl GpuModel {
    /// Records one pass over `pieces` (at most a chunk of rows) into the
    /// residual stream `x`, all layers.
    pub(super) fn record_pass<'a>(
        &'a self,
        b: &'a GpuBatch,
        pieces: &[Piece],
        layout: &Layout,
    ) -> Recorder<'a> {
        let ids: Vec<u32> = pieces.iter().flat_map(|p| p.ids.iter().copied()).collect();
        self.gpu()
            .queue
            .write_buffer(&self.s.ids, 0, bytemuck::cast_slice(&ids));
        let mut rec = Recorder::cached(&self.kernels, &b.binds);
        self.record_layers(&mut rec, b, ids.len() as u32, layout);
        rec
    }

    /// Embedding and every layer over the `n` packed rows whose ids are in
    /// the ids buffer.
    pub(super) fn record_layers(&self, rec: &mut Recorder, b: &GpuBatch, n: u32, layout: &Layout) {
        debug_assert_eq!(n, layout.rows);
        let d = self.arch.hidden_size as u32;
        let eps = self.arch.rms_norm_eps as f32;
        ops::embed(
            rec,
            &self.s.ids,
            n,
            self.weight(&self.arch.embed_name()),
            &self.s.x,
        );
        for (l, state) in b.layers.iter().enumerate() {
            let x = Rows::new(&self.s.x, d);
            ops::rmsnorm(
                rec,
                x,
                n,
                self.weight(&self.names[l].input_norm),
                eps,
                &self.s.h,
            );
            self.record_mixer(rec, l, layout, state);
            ops::rmsnorm(
                rec,
                x,
                n,
                self.weight(&self.names[l].post_norm),
                eps,
                &self.s.h,
            );
            self.record_mlp(rec, l, n);
        }
    }

    /// Logits of packed rows `rows` (at most `logit_rows`) of the last
    /// pass into rows 0.. of `logits`.
    /// `first` numbers the group's first row among the pass's rows whose
    /// logits are wanted: groups recorded into one submission keep their
    /// row tables apart.
    pub(super) fn record_head(
        &self,
        rec: &mut Recorder,
        layout: &Layout,
        first: u32,
        rows: &[u32],
    ) {
        let a = &self.arch;
        let d = a.hidden_size as u32;
        let g = rows.len() as u32;
        // The rows to `o2`, side by side: the norm and the head read them there.
        let map: Vec<[u32; 2]> = rows
            .iter()
            .enumerate()
            .map(|(i, &r)| [r, i as u32])
            .collect();
        self.gpu().queue.write_buffer(
            &layout.head_rows,
            first as u64 * 8,
            bytemuck::cast_slice(&map),
        );
        ops::copy_rows(rec, (&layout.head_rows, first), g, d, &self.s.x, &self.s.o2);
        ops::rmsnorm(
            rec,
            Rows::new(&self.s.o2, d),
            g,
            self.weight(&a.final_norm_name()),
            a.rms_norm_eps as f32,
            &self.s.h,
        );
        let head = a.head_name();
        let logits = Rows::new(&self.s.logits, a.vocab_size as u32);
        ops::matmul(
            rec,
            Rows::new(&self.s.h, d),
            g,
            self.weight(&head),
            logits,
            false,
        );
    }

    /// Scratch a mixer may use while it runs (attention's split keys,
    /// Lightning's parts): the MLP's `up`, free until the MLP runs.
    pub(super) fn spare(&self) -> Spare<'_> {
        Spare::all(&self.s.up)
    }

    /// y = h W^T (+ bias) for one of a layer's attention projections.
    pub(super) fn project(&self, rec: &mut Recorder, l: usize, proj: Proj, n: u32, y: Rows) {
        let d = self.arch.hidden_size as u32;
        let p = self.names[l].proj(proj);
        ops::matmul(
            rec,
            Rows::new(&self.s.h, d),
            n,
            self.weight(&p.weight),
            y,
            false,
        );
        if let Some(b) = self.w.get(&p.bias) {
            ops::bias(rec, b, y, n);
        }
    }

    /// o *= sigmoid(h W_gate^T) for the gate projection `name`.
    pub(super) fn record_output_gate(
        &self,
        rec: &mut Recorder,
        name: &str,
        o: &wgpu::Buffer,
        width: u32,
        n: u32,
    ) {
        let d = self.arch.hidden_size as u32;
        ops::matmul(
            rec,
            Rows::new(&self.s.h, d),
            n,
            self.weight(name),
            Rows::new(&self.s.gate, width),
            false,
        );
        ops::gate(rec, o, &self.s.gate, n * width);
    }

    /// x += o_proj(o) (+ bias).
    pub(super) fn project_out(
        &self,
        rec: &mut Recorder,
        l: usize,
        o: &wgpu::Buffer,
        width: u32,
        n: u32,
    ) {
        let d = self.arch.hidden_size as u32;
        let p = &self.names[l].o;
        let x = Rows::new(&self.s.x, d);
        ops::matmul(rec, Rows::new(o, width), n, self.weight(&p.weight), x, true);
        if let Some(b) = self.w.get(&p.bias) {
            ops::bias(rec, b, x, n);
        }
    }

    /// Layer `l`'s q, k and v for its `mixer` into `q`, `k`, `v`: the
    /// projections (+ biases), then per head the RMSNorm and RoPE its
    /// settings turn on and, for a mixer that scales its queries, HyPE or
    /// a constant. Every mixer prepares its heads this one way.
    pub(super) fn record_heads(&self, rec: &mut Recorder, l: usize, mixer: Mixer, layout: &Layout) {
        let a = &self.arch;
        let n = layout.rows;
        let hd = a.heads(mixer);
        let (heads, kv_heads, dh) = (hd.heads as u32, hd.kv_heads as u32, hd.head_dim as u32);
        let (qw, kw) = (heads * dh, kv_heads * dh);
        let names = &self.names[l];
        self.project(rec, l, Proj::Q, n, Rows::new(&self.s.q, qw));
        self.project(rec, l, Proj::K, n, Rows::new(&self.s.k, kw));
        self.project(rec, l, Proj::V, n, Rows::new(&self.s.v, kw));
        let rope = rope_on(a, mixer).then(|| &self.rope[&hd.head_dim]);
        let rot = a.rope_dims(hd.head_dim) as u32;
        let eps = a.rms_norm_eps as f32;
        let (hype_a, scale) = match a.logits_scaling {
            _ if !scales_queries(mixer) => (None, 1.0),
            LogitsScaling::None => (None, 1.0),
            LogitsScaling::Constant(c) => (None, c as f32),
            LogitsScaling::Hype(big_a) => (Some(big_a as f32), 1.0),
        };
        let norm = |name: &str| a.qk_norm(mixer).then(|| self.weight(name));
        let q_prep = HeadPrep {
            heads,
            dh,
            norm: norm(&names.q_norm),
            rope,
            rot,
            hype_a,
            scale,
            eps,
        };
        ops::heads(
            rec,
            Rows::new(&self.s.q, qw),
            n,
            &layout.positions,
            &q_prep,
            &self.s.dummy,
        );
        let k_prep = HeadPrep {
            heads: kv_heads,
            dh,
            norm: norm(&names.k_norm),
            rope,
            rot,
            hype_a: None,
            scale: 1.0,
            eps,
        };
        ops::heads(
            rec,
            Rows::new(&self.s.k, kw),
            n,
            &layout.positions,
            &k_prep,
            &self.s.dummy,
        );
    }

    /// x += down_proj(silu(gate_proj(h)) * up_proj(h))
    fn record_mlp(&self, rec: &mut Recorder, l: usize, n: u32) {
        let (d, i) = (
            self.arch.hidden_size as u32,
            self.arch.intermediate_size as u32,
        );
        let names = &self.names[l];
        let h = Rows::new(&self.s.h, d);
        ops::matmul(
            rec,
            h,
            n,
            self.weight(&names.mlp_gate),
            Rows::new(&self.s.gate, i),
            false,
        );
        ops::matmul(
            rec,
            h,
            n,
            self.weight(&names.mlp_up),
            Rows::new(&self.s.up, i),
            false,
        );
        ops::swiglu(rec, &self.s.gate, &self.s.up, n * i);
        ops::matmul(
            rec,
            Rows::new(&self.s.gate, i),
            n,
            self.weight(&names.mlp_down),
            Rows::new(&self.s.x, d),
            true,
        );
    }
}
