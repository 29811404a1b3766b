"""QK-Restore and its variants on PyTorch state dicts: the reference's own
merge, independent of the Rust one (SPEC-methods.md).

    merged = merge(pre_sd, sft_sd, softmax_layers, "qk-restore")
    merged = merge(pre_sd, sft_sd, softmax_layers, "qk-pro", heads=4, kv_heads=2, head_dim=48, beta=1.0)
"""
import torch

PROJECTIONS = {"qk-restore": "qk", "qk-pro": "qk", "q-restore": "q", "k-restore": "k", "v-restore": "v"}


def merge(pre, sft, softmax_layers, method, heads=None, kv_heads=None, head_dim=None, beta=1.0, alpha=1.0):
    """Returns a new state dict: sft, with the method's projections of the
    softmax layers taken (or blended, or QK-Pro-corrected) from pre."""
    out = {k: v.clone() for k, v in sft.items()}
    for layer in softmax_layers:
        for p in PROJECTIONS[method]:
            for leaf in ("weight", "bias"):
                name = f"model.layers.{layer}.self_attn.{p}_proj.{leaf}"
                if name not in sft:
                    continue
                if method == "qk-pro" and p == "q" and leaf == "weight":
                    k = pre[f"model.layers.{layer}.self_attn.k_proj.weight"]
                    out[name] = qk_pro(sft[name], pre[name], k, heads, kv_heads, head_dim, beta).to(sft[name].dtype)
                else:
                    s, q = sft[name].float(), pre[name].float()
                    out[name] = (s + alpha * (q - s)).to(sft[name].dtype)
    return out


def qk_pro(q_sft, q_pre, k_pre, heads, kv_heads, head_dim, beta):
    """Q*_h = Q_sft,h - beta (Q_sft,h - Q_pre,h) K^T (K K^T)^+ K, per query head, in f64."""
    qs, qp, kp = (x.double() for x in (q_sft, q_pre, k_pre))
    out = qs.clone()
    group = heads // kv_heads
    for h in range(heads):
        g = h // group
        K = kp[g * head_dim:(g + 1) * head_dim]
        rows = slice(h * head_dim, (h + 1) * head_dim)
        delta = qs[rows] - qp[rows]
        out[rows] = qs[rows] - beta * (delta @ K.T @ torch.linalg.pinv(K @ K.T) @ K)
    return out.float()
