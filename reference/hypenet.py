"""Plain PyTorch reference implementation of HypeNet.

Follows /work/shared/SPEC-hypenet.md: a Qwen3-style decoder whose layers mix
tokens either with softmax attention ("attn": GQA, per-head qk-norm, optional
RoPE, HyPE query scaling, sigmoid output gate) or with Lightning attention
("lightning-attn": linear attention with a fixed per-head ALiBi-style decay,
optional qk-norm / RoPE / output norm / sigmoid output gate).

Device-agnostic (CPU or CUDA).  RMSNorm, softmax and the Lightning state are
always computed in f32; the returned logits are f32.  Tensor names match the
upstream Hugging Face checkpoints exactly, so `save_pretrained` output can be
read by the Rust engine and `load_pretrained` can read upstream checkpoints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

ATTN = "attn"
LIGHTNING = "lightning-attn"
DEFAULT_HYPE_A = 362.0


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


@dataclass
class Config:
    vocab_size: int = 259
    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    mixer_types: List[str] = field(
        default_factory=lambda: [LIGHTNING, ATTN, LIGHTNING, LIGHTNING]
    )
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 64
    lightning_nh: Optional[int] = None
    lightning_nkv: Optional[int] = None
    lightning_head_dim: Optional[int] = None
    rms_norm_eps: float = 1e-6
    rope_theta: float = 1e6
    rope_scaling: Optional[dict] = None
    attn_use_rope: bool = False
    lightning_use_rope: bool = True
    attn_use_output_gate: bool = True
    attn_logits_scaling: Union[None, float, str] = None
    lightning_use_qk_norm: bool = True
    lightning_use_output_norm: bool = True
    lightning_use_output_gate: bool = True
    lightning_use_short_conv: bool = False
    lightning_scale: str = "1/sqrt(d)"
    attention_bias: bool = False
    tie_word_embeddings: bool = True
    bos_token_id: Optional[int] = 256
    eos_token_id: Optional[int] = 257
    pad_token_id: Optional[int] = 258
    torch_dtype: str = "bfloat16"
    model_type: str = "hypenet"
    architectures: List[str] = field(default_factory=lambda: ["HypeNetForCausalLM"])

    # ---- resolved views -------------------------------------------------
    @property
    def mixers(self) -> List[str]:
        """Normalised per-layer mixer list ("attn" / "lightning-attn")."""
        if not self.mixer_types:
            return [ATTN] * self.num_hidden_layers
        out = []
        for m in self.mixer_types:
            if m == ATTN:
                out.append(ATTN)
            elif m in ("lightning-attn", "lightning_attn"):
                out.append(LIGHTNING)
            else:
                raise ValueError(f"unknown mixer type {m!r}")
        if len(out) != self.num_hidden_layers:
            raise ValueError(
                f"mixer_types has {len(out)} entries, num_hidden_layers={self.num_hidden_layers}"
            )
        return out

    @property
    def lnh(self) -> int:
        return self.lightning_nh if self.lightning_nh is not None else self.num_attention_heads

    @property
    def lnkv(self) -> int:
        return self.lightning_nkv if self.lightning_nkv is not None else self.num_key_value_heads

    @property
    def ldim(self) -> int:
        return self.lightning_head_dim if self.lightning_head_dim is not None else self.head_dim

    @property
    def lscale(self) -> float:
        return lightning_scale_value(self.lightning_scale, self.ldim)

    @property
    def query_scaling(self):
        """(kind, value): ("none", None) | ("const", s) | ("hype", A)."""
        return parse_logits_scaling(self.attn_logits_scaling)

    def validate(self) -> None:
        self.mixers  # noqa: B018  (raises on bad lists)
        if self.lightning_use_short_conv:
            raise NotImplementedError("lightning_use_short_conv=true is not supported")
        if self.rope_scaling is not None:
            raise NotImplementedError("rope_scaling must be null")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.lnh % self.lnkv:
            raise ValueError("lightning_nh must be a multiple of lightning_nkv")
        if self.head_dim % 2 or self.ldim % 2:
            raise ValueError("head dims must be even (RoPE)")
        self.query_scaling  # noqa: B018

    # ---- json -------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        names = {f.name for f in dataclasses.fields(cls)}
        cfg = cls(**{k: v for k, v in d.items() if k in names})
        if "mixer_types" in d and d["mixer_types"] is None:
            cfg.mixer_types = []
        return cfg

    @classmethod
    def from_json(cls, path: str) -> "Config":
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


def parse_logits_scaling(v):
    if v is None:
        return ("none", None)
    if isinstance(v, bool):
        raise ValueError(f"bad attn_logits_scaling {v!r}")
    if isinstance(v, (int, float)):
        return ("const", float(v))
    if isinstance(v, str):
        s = v.strip()
        if s == "hype":
            return ("hype", DEFAULT_HYPE_A)
        if s.startswith("hype"):
            a = float(s[4:].strip())
            if a <= 1.0:
                raise ValueError("HyPE A must be > 1")
            return ("hype", a)
        return ("const", float(s))
    raise ValueError(f"bad attn_logits_scaling {v!r}")


def lightning_scale_value(s, dl: int) -> float:
    if s == "1/sqrt(d)":
        return dl ** -0.5
    if s == "1/d":
        return 1.0 / dl
    return 1.0


# --------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------


def rmsnorm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """w * x / sqrt(mean(x^2) + eps) over the last axis, computed in f32.

    Returns the input dtype."""
    x32 = x.float()
    y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return (w.float() * y).to(x.dtype)


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        return rmsnorm(x, self.weight, self.eps)


def alibi_slopes(n: int) -> List[float]:
    """ALiBi slopes: 2^(-8(h+1)/n) for n a power of two; otherwise
    slopes(m) + slopes(2m)[0::2][: n-m] with m = 2^floor(log2 n)."""

    def pow2(k):
        return [2.0 ** (-8.0 * (h + 1) / k) for h in range(k)]

    if n <= 0:
        raise ValueError("n must be positive")
    if n & (n - 1) == 0:
        return pow2(n)
    m = 2 ** int(math.floor(math.log2(n)))
    return pow2(m) + pow2(2 * m)[0::2][: n - m]


def rope_cos_sin(positions: torch.Tensor, dim: int, theta: float):
    """cos/sin tables [T, dim] in f32 for absolute positions (HF Qwen3 style,
    rotate-half layout: the dim/2 frequencies are repeated twice)."""
    inv_freq = 1.0 / (
        theta ** (torch.arange(0, dim, 2, dtype=torch.int64, device=positions.device).float() / dim)
    )
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos(), emb.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x [..., T, d]; out[j] = x[j]cos - x[j+d/2]sin, out[j+d/2] = x[j+d/2]cos + x[j]sin."""
    d = x.shape[-1]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    rot = torch.cat([-x2, x1], dim=-1)
    return x * cos + rot * sin


def hype_factor(positions: torch.Tensor, a: float) -> torch.Tensor:
    """ln(t + A) / ln(A) for absolute positions t, f32 [T]."""
    return torch.log(positions.float() + a) / math.log(a)


# --------------------------------------------------------------------------
# Lightning attention kernels (f32).  q, k, v: [B, H, T, d] (kv already
# expanded to the query heads), slopes: list of H floats.
# Return (o [B, H, T, d] already multiplied by scale, final state [B, H, d, d]).
# --------------------------------------------------------------------------


def _no_autocast(device: torch.device):
    return torch.autocast(device_type=device.type, enabled=False)


def lightning_recurrent(q, k, v, slopes: Sequence[float], scale: float, state=None):
    """Literal recurrence: S(t) = gamma*S(t-1) + k(t)^T v(t); o(t) = scale*q(t) S(t)."""
    with _no_autocast(q.device):
        q, k, v = q.float(), k.float(), v.float()
        B, H, T, d = q.shape
        dv = v.shape[-1]
        gamma = torch.exp(-torch.tensor(slopes, dtype=torch.float64, device=q.device)).float()
        gamma = gamma.view(1, H, 1, 1)
        S = (
            torch.zeros(B, H, d, dv, dtype=torch.float32, device=q.device)
            if state is None
            else state.float()
        )
        outs = []
        for t in range(T):
            S = gamma * S + k[:, :, t, :, None] * v[:, :, t, None, :]
            outs.append(torch.einsum("bhd,bhde->bhe", q[:, :, t], S))
        o = torch.stack(outs, dim=2) if outs else q.new_zeros(B, H, 0, dv)
        return o * scale, S


def _chunk_block(q, k, v, slope64: torch.Tensor, state):
    """Chunked parallel form over N chunks of equal length c.

    q, k, v [B, H, N, c, d] f32; slope64 [H] f64; state [B, H, d, dv] f32.
    Returns (o [B, H, N, c, dv] unscaled, final state)."""
    B, H, N, c, d = q.shape
    dev = q.device
    idx = torch.arange(c, device=dev, dtype=torch.float64)
    s = slope64.view(H, 1, 1)
    diff = idx[:, None] - idx[None, :]  # i - j
    causal = diff >= 0
    intra = torch.where(causal, torch.exp(-s * diff.clamp(min=0)), torch.zeros((), dtype=torch.float64, device=dev))
    intra = intra.float()  # [H, c, c]  gamma^(i-j), i >= j
    q_dec = torch.exp(-s * (idx + 1).view(1, c, 1)).float()  # [H, c, 1] gamma^(i+1)
    k_dec = torch.exp(-s * (c - 1 - idx).view(1, c, 1)).float()  # [H, c, 1] gamma^(c-1-j)

    # intra-chunk: (q k^T ⊙ decay mask) v
    a = torch.matmul(q, k.transpose(-1, -2)) * intra[None, :, None]
    o = torch.matmul(a, v)

    # per-chunk contribution to the state at its end
    kv = torch.matmul((k * k_dec[None, :, None]).transpose(-1, -2), v)  # [B, H, N, d, dv]

    # states entering each chunk: S_in[n] = sum_{m<n} gC^(n-1-m) kv[m] + gC^n S0
    n_idx = torch.arange(N, device=dev, dtype=torch.float64)
    nd = n_idx[:, None] - 1 - n_idx[None, :]  # n-1-m
    sc = (slope64 * c).view(H, 1, 1)
    carry = torch.where(nd >= 0, torch.exp(-sc * nd.clamp(min=0)), torch.zeros((), dtype=torch.float64, device=dev)).float()
    s_in = torch.einsum("hnm,bhmde->bhnde", carry, kv)
    s_in = s_in + torch.exp(-sc.view(1, H, 1, 1, 1) * n_idx.view(1, 1, N, 1, 1)).float() * state[:, :, None]
    o = o + torch.matmul(q * q_dec[None, :, None], s_in)

    # final state after the last chunk
    last = torch.exp(-sc.view(H, 1) * (N - 1 - n_idx).view(1, N)).float()  # [H, N]
    s_out = torch.einsum("hm,bhmde->bhde", last, kv) + torch.exp(-sc.view(1, H, 1, 1) * N).float() * state
    return o, s_out


def lightning_chunked(q, k, v, slopes: Sequence[float], scale: float, state=None, chunk: int = 64):
    """Chunked parallel Lightning attention; matches `lightning_recurrent`
    to f32 rounding for any T (the tail that does not fill a chunk is one
    extra shorter chunk)."""
    with _no_autocast(q.device):
        q, k, v = q.float(), k.float(), v.float()
        B, H, T, d = q.shape
        dv = v.shape[-1]
        slope64 = torch.tensor(slopes, dtype=torch.float64, device=q.device)
        S = (
            torch.zeros(B, H, d, dv, dtype=torch.float32, device=q.device)
            if state is None
            else state.float()
        )
        n_full, rem = divmod(T, chunk)
        outs = []
        if n_full:
            tf = n_full * chunk
            o, S = _chunk_block(
                q[:, :, :tf].reshape(B, H, n_full, chunk, d),
                k[:, :, :tf].reshape(B, H, n_full, chunk, d),
                v[:, :, :tf].reshape(B, H, n_full, chunk, dv),
                slope64,
                S,
            )
            outs.append(o.reshape(B, H, tf, dv))
        if rem:
            o, S = _chunk_block(
                q[:, :, T - rem :].reshape(B, H, 1, rem, d),
                k[:, :, T - rem :].reshape(B, H, 1, rem, d),
                v[:, :, T - rem :].reshape(B, H, 1, rem, dv),
                slope64,
                S,
            )
            outs.append(o.reshape(B, H, rem, dv))
        o = torch.cat(outs, dim=2) if outs else q.new_zeros(B, H, 0, dv)
        return o * scale, S


# --------------------------------------------------------------------------
# Decode cache
# --------------------------------------------------------------------------


class Cache:
    """Per-layer decode cache: softmax layers keep (k, v) [B, Hkv, T, dh]
    (k after k_norm and RoPE), Lightning layers keep S [B, nh, dl, dl]."""

    def __init__(self):
        self.pos = 0
        self.layers: Dict[int, object] = {}


# --------------------------------------------------------------------------
# Mixers
# --------------------------------------------------------------------------


class SoftmaxAttention(nn.Module):
    def __init__(self, cfg: Config, layer_idx: int):
        super().__init__()
        D, H, Hkv, dh = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.layer_idx = layer_idx
        self.H, self.Hkv, self.dh = H, Hkv, dh
        self.eps = cfg.rms_norm_eps
        self.use_rope = cfg.attn_use_rope
        self.rope_theta = cfg.rope_theta
        # read at every forward, so that setting model.config.attn_logits_scaling
        # (e.g. HyPE at inference only) takes effect without rebuilding
        self.cfg = cfg
        b = cfg.attention_bias
        self.q_proj = nn.Linear(D, H * dh, bias=b)
        self.k_proj = nn.Linear(D, Hkv * dh, bias=b)
        self.v_proj = nn.Linear(D, Hkv * dh, bias=b)
        self.o_proj = nn.Linear(H * dh, D, bias=b)
        self.q_norm = RMSNorm(dh, cfg.rms_norm_eps)
        self.k_norm = RMSNorm(dh, cfg.rms_norm_eps)
        self.o_gate = nn.Linear(D, H * dh, bias=False) if cfg.attn_use_output_gate else None

    def forward(self, x, positions, ctx):
        B, T, _ = x.shape
        H, Hkv, dh = self.H, self.Hkv, self.dh
        q = self.q_norm(self.q_proj(x).view(B, T, H, dh)).transpose(1, 2)
        k = self.k_norm(self.k_proj(x).view(B, T, Hkv, dh)).transpose(1, 2)
        v = self.v_proj(x).view(B, T, Hkv, dh).transpose(1, 2)
        if self.use_rope:
            cos, sin = rope_cos_sin(positions, dh, self.rope_theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        kind, val = self.cfg.query_scaling
        if kind == "hype":
            q = q * hype_factor(positions, val).view(1, 1, T, 1)
        elif kind == "const":
            q = q * val

        cache = ctx["cache"]
        if cache is not None:
            past = cache.layers.get(self.layer_idx)
            if past is not None:
                k = torch.cat([past[0], k.to(past[0].dtype)], dim=2)
                v = torch.cat([past[1], v.to(past[1].dtype)], dim=2)
            cache.layers[self.layer_idx] = (k, v)
        Tk = k.shape[2]

        rep = H // Hkv
        if rep > 1:  # query head h reads kv head h // rep
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)

        want = ctx["return_attn"]
        explicit = ctx["attn_impl"] == "explicit" or (want is not None and want[0] == self.layer_idx)
        # causal mask aligned to the end (queries are the last T of the Tk keys)
        if explicit or (Tk != T and T > 1):
            qpos = torch.arange(Tk - T, Tk, device=x.device)
            kpos = torch.arange(Tk, device=x.device)
            mask = kpos[None, :] <= qpos[:, None]  # [T, Tk]
        else:
            mask = None

        if explicit:
            logits = torch.matmul(q.float(), k.float().transpose(-1, -2)) / math.sqrt(dh)
            logits = logits.masked_fill(~mask, float("-inf"))
            p = torch.softmax(logits, dim=-1)
            if want is not None and want[0] == self.layer_idx:
                ctx["attn_out"] = p[:, want[1]]
            o = torch.matmul(p, v.float()).to(v.dtype)
        else:
            dt = v.dtype
            o = F.scaled_dot_product_attention(
                q.to(dt),
                k.to(dt),
                v,
                attn_mask=mask,
                is_causal=(mask is None and T > 1),
            )
        o = o.transpose(1, 2).reshape(B, T, H * dh)
        if self.o_gate is not None:
            o = o * torch.sigmoid(self.o_gate(x).float()).to(o.dtype)
        return self.o_proj(o.to(x.dtype))


class LightningAttention(nn.Module):
    def __init__(self, cfg: Config, layer_idx: int):
        super().__init__()
        D, nh, nkv, dl = cfg.hidden_size, cfg.lnh, cfg.lnkv, cfg.ldim
        self.layer_idx = layer_idx
        self.nh, self.nkv, self.dl = nh, nkv, dl
        self.eps = cfg.rms_norm_eps
        self.use_rope = cfg.lightning_use_rope
        self.rope_theta = cfg.rope_theta
        self.scale = cfg.lscale
        self.slopes = alibi_slopes(nh)
        b = cfg.attention_bias
        self.q_proj = nn.Linear(D, nh * dl, bias=b)
        self.k_proj = nn.Linear(D, nkv * dl, bias=b)
        self.v_proj = nn.Linear(D, nkv * dl, bias=b)
        self.o_proj = nn.Linear(nh * dl, D, bias=b)
        if cfg.lightning_use_qk_norm:
            self.q_norm = RMSNorm(dl, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(dl, cfg.rms_norm_eps)
        else:
            self.q_norm = self.k_norm = None
        self.o_norm = RMSNorm(nh * dl, cfg.rms_norm_eps) if cfg.lightning_use_output_norm else None
        self.z_proj = nn.Linear(D, nh * dl, bias=False) if cfg.lightning_use_output_gate else None

    def forward(self, x, positions, ctx):
        B, T, _ = x.shape
        nh, nkv, dl = self.nh, self.nkv, self.dl
        q = self.q_proj(x).view(B, T, nh, dl).float()
        k = self.k_proj(x).view(B, T, nkv, dl).float()
        v = self.v_proj(x).view(B, T, nkv, dl).float()
        if self.q_norm is not None:
            q = rmsnorm(q, self.q_norm.weight, self.eps)
            k = rmsnorm(k, self.k_norm.weight, self.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if self.use_rope:
            cos, sin = rope_cos_sin(positions, dl, self.rope_theta)
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        rep = nh // nkv
        if rep > 1:  # head h uses kv head h // rep
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)

        cache = ctx["cache"]
        s0 = cache.layers.get(self.layer_idx) if cache is not None else None
        if ctx["lightning_mode"] == "recurrent":
            o, S = lightning_recurrent(q, k, v, self.slopes, self.scale, s0)
        elif ctx["lightning_mode"] == "chunked":
            o, S = lightning_chunked(q, k, v, self.slopes, self.scale, s0, chunk=ctx["chunk"])
        else:
            raise ValueError(f"unknown lightning_mode {ctx['lightning_mode']!r}")
        if cache is not None:
            cache.layers[self.layer_idx] = S.detach()
        if ctx["states"] is not None:
            ctx["states"][self.layer_idx] = S

        o = o.transpose(1, 2).reshape(B, T, nh * dl)  # f32
        if self.o_norm is not None:
            o = rmsnorm(o, self.o_norm.weight, self.eps)
        if self.z_proj is not None:
            o = o * torch.sigmoid(self.z_proj(x).float())
        return self.o_proj(o.to(x.dtype))


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


class MLP(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: Config, layer_idx: int, mixer: str):
        super().__init__()
        self.mixer = mixer
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        if mixer == ATTN:
            self.self_attn = SoftmaxAttention(cfg, layer_idx)
        else:
            self.self_attn = LightningAttention(cfg, layer_idx)
        self.mlp = MLP(cfg)

    def forward(self, x, positions, ctx):
        x = x + self.self_attn(self.input_layernorm(x), positions, ctx)
        x = x + self.mlp(self.post_attention_layernorm(x))
        return x


class HypeNetModel(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(
            [DecoderLayer(cfg, i, m) for i, m in enumerate(cfg.mixers)]
        )
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class HypeNet(nn.Module):
    """HypeNet causal LM.  Parameter names: model.embed_tokens.weight,
    model.layers.{i}.…, model.norm.weight, and lm_head.weight only when
    tie_word_embeddings is false."""

    def __init__(self, cfg: Config):
        super().__init__()
        cfg.validate()
        self.config = cfg
        self.model = HypeNetModel(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """Normal(0, std) for projections and embeddings, ones for norms,
        zero biases; o_proj / down_proj use std / sqrt(2L)."""
        L = self.config.num_hidden_layers
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() == 1:
                nn.init.ones_(p)
            elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                nn.init.normal_(p, 0.0, std / math.sqrt(2 * L))
            else:
                nn.init.normal_(p, 0.0, std)

    def head_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def forward(
        self,
        ids: torch.Tensor,
        lightning_mode: str = "chunked",
        return_attn=None,
        return_states: bool = False,
        start_pos: int = 0,
        cache: Optional[Cache] = None,
        attn_impl: str = "sdpa",
        chunk: int = 64,
    ):
        """ids [B, T] (long).  Returns logits [B, T, V] (f32).

        With return_attn=(layer, head) and/or return_states=True, returns
        (logits, extras) where extras["attn"] is that softmax head's
        probability matrix [B, T, Tk] (computed by the explicit path) and
        extras["states"] maps each Lightning layer index to its final state
        S [B, nh, dl, dl] (f32).

        start_pos: absolute position of ids[:, 0] (RoPE and HyPE).  With a
        `cache`, positions continue from cache.pos and the cache is updated.
        attn_impl: "sdpa" (default) or "explicit" softmax path.
        """
        if ids.dim() == 1:
            ids = ids[None]
        B, T = ids.shape
        if cache is not None:
            if start_pos not in (0, cache.pos):
                raise ValueError("start_pos disagrees with cache.pos")
            start_pos = cache.pos
        positions = torch.arange(start_pos, start_pos + T, device=ids.device)
        ctx = {
            "cache": cache,
            "lightning_mode": lightning_mode,
            "return_attn": tuple(return_attn) if return_attn is not None else None,
            "attn_impl": attn_impl,
            "states": {} if return_states else None,
            "chunk": chunk,
        }
        if return_attn is not None and self.config.mixers[return_attn[0]] != ATTN:
            raise ValueError(f"layer {return_attn[0]} is not a softmax layer")
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, positions, ctx)
        x = self.model.norm(x)
        logits = F.linear(x, self.head_weight()).float()
        if cache is not None:
            cache.pos += T
        if return_attn is None and not return_states:
            return logits
        extras = {}
        if return_attn is not None:
            extras["attn"] = ctx.get("attn_out")
        if return_states:
            extras["states"] = ctx["states"]
        return logits, extras


# --------------------------------------------------------------------------
# Save / load (Hugging Face folder layout)
# --------------------------------------------------------------------------

_DTYPE_NAMES = {torch.bfloat16: "bfloat16", torch.float16: "float16", torch.float32: "float32"}


def save_pretrained(model: HypeNet, cfg: Config, folder: str, dtype=torch.bfloat16) -> None:
    """Write folder/config.json and folder/model.safetensors (upstream
    names, contiguous tensors; the tied LM head is not stored)."""
    from safetensors.torch import save_file

    os.makedirs(folder, exist_ok=True)
    cfg = dataclasses.replace(cfg, torch_dtype=_DTYPE_NAMES.get(dtype, str(dtype).replace("torch.", "")))
    tensors = {}
    for name, t in model.state_dict().items():
        if cfg.tie_word_embeddings and name == "lm_head.weight":
            continue
        tensors[name] = t.detach().to(device="cpu", dtype=dtype).contiguous().clone()
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    cfg.to_json(os.path.join(folder, "config.json"))


def load_state_tensors(folder: str) -> Dict[str, torch.Tensor]:
    """All tensors of a HF folder (single file or sharded with an index)."""
    from safetensors.torch import load_file

    single = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(single):
        return load_file(single)
    if os.path.exists(index):
        with open(index, "r", encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        out: Dict[str, torch.Tensor] = {}
        for s in shards:
            out.update(load_file(os.path.join(folder, s)))
        return out
    raise FileNotFoundError(f"no model.safetensors or index in {folder}")


def load_pretrained(folder: str, device="cpu", dtype=torch.float32):
    """Returns (model, cfg); model in eval mode on `device` with `dtype`."""
    cfg = Config.from_json(os.path.join(folder, "config.json"))
    tensors = load_state_tensors(folder)
    with torch.device("meta"):
        model = HypeNet(cfg)
    if cfg.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    model.load_state_dict(tensors, strict=True, assign=True)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    return model, cfg


# --------------------------------------------------------------------------
# Greedy generation
# --------------------------------------------------------------------------


@torch.no_grad()
def generate(model: HypeNet, ids, max_new: int, stop_ids: Sequence[int] = (), use_cache: bool = True,
             lightning_mode: str = "chunked") -> List[int]:
    """Greedy decoding for one sequence.  ids: list of ints or a 1-D / [1, T]
    tensor.  Returns the new token ids (a stop id, if hit, is included last)."""
    device = model.model.embed_tokens.weight.device
    seq = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)
    stop = set(int(s) for s in stop_ids)
    out: List[int] = []
    cache = Cache() if use_cache else None
    logits = model(seq, lightning_mode=lightning_mode, cache=cache)
    for _ in range(max_new):
        nxt = int(logits[0, -1].argmax())
        out.append(nxt)
        if nxt in stop or len(out) == max_new:
            break
        tok = torch.tensor([[nxt]], dtype=torch.long, device=device)
        if use_cache:
            logits = model(tok, lightning_mode=lightning_mode, cache=cache)
        else:
            seq = torch.cat([seq, tok], dim=1)
            logits = model(seq, lightning_mode=lightning_mode)
    return out
