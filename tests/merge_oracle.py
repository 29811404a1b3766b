"""Independent oracle for `qklab merge`: recomputes a merge with numpy from
the pre and sft checkpoints (read by Python's safetensors) and compares it
with qklab's output, tensor by tensor.

    python merge_oracle.py PRE_DIR SFT_DIR OUT_DIR SPEC_JSON
    python merge_oracle.py drift PRE_DIR SFT_DIR DRIFT_JSON   (checks `qklab drift --json`)

SPEC_JSON: {"method", "alpha", "beta", "layers" (null = all softmax), "include_norms"}.
Exits non-zero with a message on the first disagreement; prints a JSON
summary otherwise.
"""
import json
import os
import sys

import ml_dtypes  # registers bfloat16 with numpy
import numpy as np
from safetensors import safe_open


def load(folder):
    tensors, shard_of = {}, {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".safetensors"):
            with safe_open(os.path.join(folder, name), framework="numpy") as f:
                for k in f.keys():
                    tensors[k] = f.get_tensor(k)
                    shard_of[k] = name
    return tensors, shard_of


def fail(msg):
    print(msg, file=sys.stderr)
    sys.exit(1)


def main():
    pre_dir, sft_dir, out_dir, spec = sys.argv[1], sys.argv[2], sys.argv[3], json.loads(sys.argv[4])
    cfg = json.load(open(os.path.join(sft_dir, "config.json")))
    pre, _ = load(pre_dir)
    sft, sft_shard = load(sft_dir)
    out, out_shard = load(out_dir)
    if set(out) != set(sft):
        fail(f"tensor names differ: {sorted(set(out) ^ set(sft))}")
    softmax = [i for i, m in enumerate(cfg["mixer_types"]) if m == "attn"]
    layers = spec["layers"] if spec.get("layers") is not None else softmax
    method, alpha, beta = spec["method"], np.float32(spec.get("alpha", 1.0)), spec.get("beta", 1.0)
    projs = {"qk-restore": "qk", "qk-pro": "qk", "q-restore": "q", "k-restore": "k", "v-restore": "v"}[method]
    H, Hkv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    dh, D = cfg["head_dim"], cfg["hidden_size"]

    expected = {}
    for l in layers:
        for p in projs:
            names = [f"model.layers.{l}.self_attn.{p}_proj.weight", f"model.layers.{l}.self_attn.{p}_proj.bias"]
            if spec.get("include_norms") and p != "v":
                names.append(f"model.layers.{l}.self_attn.{p}_norm.weight")
            for n in names:
                if n not in sft:
                    continue
                if method == "qk-pro" and n.endswith("q_proj.weight"):
                    expected[n] = qk_pro(sft[n], pre[n], pre[f"model.layers.{l}.self_attn.k_proj.weight"], H, Hkv, dh, D, beta)
                elif alpha == 1:
                    expected[n] = pre[n]
                else:
                    s, q = sft[n].astype(np.float32), pre[n].astype(np.float32)
                    expected[n] = (s + alpha * (q - s)).astype(sft[n].dtype)

    ulp_checked = 0
    for n, o in out.items():
        if out_shard[n] != sft_shard[n]:
            fail(f"{n}: in shard {out_shard[n]}, sft has it in {sft_shard[n]}")
        want = expected.get(n, sft[n])
        if o.dtype != want.dtype or o.shape != want.shape:
            fail(f"{n}: {o.dtype}{o.shape} vs expected {want.dtype}{want.shape}")
        if method == "qk-pro" and n.endswith("q_proj.weight") and n in expected:
            # Within 1 ulp of the tensor's dtype after rounding.
            bits = {2: np.int16, 4: np.int32}[o.dtype.itemsize]
            a, b = o.view(bits).astype(np.int64), want.view(bits).astype(np.int64)
            # Map sign-magnitude to a monotonic integer line.
            top = 1 << (8 * o.dtype.itemsize - 1)
            a = np.where(a < 0, -(a + top), a)
            b = np.where(b < 0, -(b + top), b)
            worst = int(np.abs(a - b).max()) if a.size else 0
            if worst > 1:
                fail(f"{n}: QK-Pro differs by {worst} ulp")
            ulp_checked += 1
        elif o.tobytes() != want.tobytes():
            fail(f"{n}: bytes differ ({'changed' if n in expected else 'must equal sft'})")
    print(json.dumps({"tensors": len(out), "changed": sorted(expected), "qk_pro_ulp_checked": ulp_checked}))


def qk_pro(q_sft, q_pre, k_pre, H, Hkv, dh, D, beta):
    """Q*_h = Q_sft,h - beta (Q_sft,h - Q_pre,h) P_g with P_g = K^T (K K^T)^+ K, in f64."""
    qs, qp, kp = (x.astype(np.float64) for x in (q_sft, q_pre, k_pre))
    out = qs.copy()
    group = H // Hkv
    for h in range(H):
        g = h // group
        K = kp[g * dh:(g + 1) * dh]
        P = K.T @ np.linalg.pinv(K @ K.T) @ K
        rows = slice(h * dh, (h + 1) * dh)
        out[rows] = qs[rows] - beta * (qs[rows] - qp[rows]) @ P
    return out.astype(np.float32).astype(q_sft.dtype)


def check_drift(pre_dir, sft_dir, report_path):
    """Relative Frobenius drift per tensor and per head (rows of head_dim for softmax q/k)."""
    cfg = json.load(open(os.path.join(sft_dir, "config.json")))
    pre, _ = load(pre_dir)
    sft, _ = load(sft_dir)
    report = json.load(open(report_path))
    dh, D = cfg["head_dim"], cfg["hidden_size"]
    softmax = {i for i, m in enumerate(cfg["mixer_types"]) if m == "attn"}
    got = {t["name"]: t for t in report["tensors"]}
    if set(got) != set(sft):
        fail(f"drift covers other tensors: {sorted(set(got) ^ set(sft))}")

    def rel(p, s):
        return float(np.linalg.norm(s - p) / np.linalg.norm(p))

    for n in sft:
        p, s = pre[n].astype(np.float64).ravel(), sft[n].astype(np.float64).ravel()
        if abs(got[n]["drift"] - rel(p, s)) > 1e-9 * max(1.0, rel(p, s)):
            fail(f"{n}: drift {got[n]['drift']} vs {rel(p, s)}")
        layer = int(n.split(".")[2]) if n.startswith("model.layers.") else None
        if layer in softmax and n.endswith(("self_attn.q_proj.weight", "self_attn.k_proj.weight")):
            want = [rel(p[i:i + dh * D], s[i:i + dh * D]) for i in range(0, p.size, dh * D)]
            heads = got[n].get("heads") or []
            if len(heads) != len(want) or max(abs(a - b) for a, b in zip(heads, want)) > 1e-9:
                fail(f"{n}: per-head drift {heads} vs {want}")
        elif got[n].get("heads") is not None:
            fail(f"{n}: per-head drift where none is due")
    print(json.dumps({"tensors": len(got)}))


if __name__ == "__main__":
    if sys.argv[1] == "drift":
        check_drift(*sys.argv[2:5])
    else:
        main()
