//! Lightning attention in the reference (SPEC-hypenet.md, "Lightning
//! attention"): the literal recurrence over a state per query head.

use crate::config::{LightningScale, Mixer};
use crate::model::cpu::math::{alibi_slopes, inv_sqrt, rmsnorm_rows};
use crate::model::cpu::model::CpuModel;

impl CpuModel {
    /// Lightning attention as the literal recurrence, continued from the
    /// state `s` (`[nh, dl, dl]`) that the earlier positions left behind:
    /// S_h(t) = gamma_h S_h(t-1) + k_h(t)^T v_h(t),  o_h(t) = scale q_h(t) S_h(t).
    pub(super) fn lightning_attention(
        &self,
        l: usize,
        h: &[f32],
        pos0: usize,
        s: &mut [f32],
    ) -> Vec<f32> {
        let a = &self.arch;
        let (nh, nkv, dl) = (
            a.lightning.heads as usize,
            a.lightning.kv_heads as usize,
            a.lightning.head_dim as usize,
        );
        let n = h.len() / a.hidden_size as usize;
        let [q, k, v] = self.heads_qkv(l, h, pos0, Mixer::Lightning);
        let names = &self.names[l];
        let scale = match a.lightning_scale {
            LightningScale::InvSqrtD => inv_sqrt(dl),
            LightningScale::InvD => 1.0 / dl as f32,
            LightningScale::One => 1.0,
        };
        let group = nh / nkv;
        let mut o = vec![0.0f32; n * nh * dl];
        for (hd, slope) in alibi_slopes(nh).into_iter().enumerate() {
            let gamma = (-slope).exp() as f32;
            let g = hd / group;
            let s_h = &mut s[hd * dl * dl..][..dl * dl];
            for i in 0..n {
                decay_and_add(
                    s_h,
                    gamma,
                    &k[(i * nkv + g) * dl..][..dl],
                    &v[(i * nkv + g) * dl..][..dl],
                );
                read_state(
                    s_h,
                    &q[(i * nh + hd) * dl..][..dl],
                    scale,
                    &mut o[(i * nh + hd) * dl..][..dl],
                );
            }
        }
        if a.lightning_use_output_norm {
            // rmsnorm over the full width nh * dl
            o = rmsnorm_rows(&o, self.t(&names.o_norm), a.rms_norm_eps);
        }
        if a.lightning_use_output_gate {
            self.gate(&mut o, h, &names.z_proj, nh * dl);
        }
        self.out_proj(l, &o, nh * dl)
    }
}

/// S = gamma S + k^T v for one head, S `[dk, dv]` row-major.
fn decay_and_add(s: &mut [f32], gamma: f32, k: &[f32], v: &[f32]) {
    for (row, ki) in s.chunks_mut(v.len()).zip(k) {
        row.iter_mut()
            .zip(v)
            .for_each(|(s, v)| *s = gamma * *s + ki * v);
    }
}

/// out += scale q S for one head, S `[dk, dv]` row-major.
fn read_state(s: &[f32], q: &[f32], scale: f32, out: &mut [f32]) {
    for (row, qi) in s.chunks(out.len()).zip(q) {
        let qi = qi * scale;
        out.iter_mut().zip(row).for_each(|(o, s)| *o += qi * s);
    }
}
