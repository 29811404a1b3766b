"""Plain PyTorch reference implementation of Jet-Nemotron (`jet_nemotron`).

Written from /work/shared/SPEC-gdn.md: a Qwen2-style decoder whose layers
mix tokens with a JetBlock ("jet": the gated delta rule over SiLU q/k and a
dynamically convolved v), full softmax attention ("attn") or sliding-window
softmax attention ("swa"). The config.json and the tensor names are NVlabs'
(NVlabs/Jet-Nemotron, `jetai/modeling/hf/`), so that `save_pretrained`
output loads in NVlabs' code and in qklab, and NVlabs' checkpoints load here.

For training: the gated delta rule runs in a chunked (WY) form in f32, also
under `torch.autocast`; `gdn_impl="fla"` swaps in flash-linear-attention's
Triton `chunk_gated_delta_rule` on a CUDA device. Without a decode cache:
every forward starts from position 0 (prefill / teacher forcing only).
RMSNorm, RoPE, the SwiGLU MLP and the safetensors helpers are hypenet.py's.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from hypenet import MLP, RMSNorm, _no_autocast, apply_rope, load_state_tensors, rmsnorm, rope_cos_sin
from hypenet import save_pretrained as _save_pretrained

JET, ATTN, SWA = "jet", "attn", "swa"
GDN_IMPLS = ("chunked", "recurrent", "fla")

# NVlabs' JetBlockConfig defaults (jet_block.py), for keys a config leaves out.
JET_BLOCK_DEFAULTS = dict(
    mode="chunk", expand_v=2.0, num_heads=6, head_dim=256, norm_eps=1e-5,
    conv_size=4, dconv_generator_reduction=8, dconv_implementation="triton",
)


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class JetBlockSizes:
    """efficient_attention_config.jet, resolved: nh heads of dk keys and
    dv = dk * expand_v values; the kernel generator's hidden width is the
    value width over dconv_generator_reduction."""

    num_heads: int
    head_dim: int
    expand_v: float
    conv_size: int
    reduction: int
    norm_eps: float

    @property
    def dk(self) -> int:
        return self.head_dim

    @property
    def dv(self) -> int:
        return int(self.head_dim * self.expand_v)

    @property
    def key_width(self) -> int:
        return self.num_heads * self.dk

    @property
    def value_width(self) -> int:
        return self.num_heads * self.dv

    @property
    def generator_width(self) -> int:
        return self.value_width // self.reduction


@dataclass
class JetConfig:
    """NVlabs' JetNemotronConfig fields. Keys this class does not know are
    kept in `extra` and written back (an `auto_map`, say)."""

    vocab_size: int = 259
    hidden_size: int = 192
    intermediate_size: int = 512
    num_hidden_layers: int = 8
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: Optional[int] = None  # NVlabs: hidden_size // num_attention_heads when absent
    hidden_act: str = "silu"
    max_position_embeddings: int = 32768
    initializer_range: float = 0.02
    rms_norm_eps: float = 1e-6
    use_cache: bool = True
    tie_word_embeddings: bool = True
    rope_theta: float = 1e6
    rope_scaling: Optional[dict] = None
    attention_dropout: float = 0.0
    layer_types: Optional[List[str]] = None  # NVlabs: all "attn" when absent
    efficient_attention_config: Optional[dict] = None
    bos_token_id: Optional[int] = 256
    eos_token_id: Optional[int] = 257
    pad_token_id: Optional[int] = 258
    torch_dtype: str = "bfloat16"
    model_type: str = "jet_nemotron"
    architectures: List[str] = field(default_factory=lambda: ["JetNemotronForCausalLM"])
    extra: Dict[str, object] = field(default_factory=dict)

    # ---- resolved views -------------------------------------------------
    @property
    def layers(self) -> List[str]:
        types = self.layer_types if self.layer_types is not None else [ATTN] * self.num_hidden_layers
        if len(types) != self.num_hidden_layers:
            raise ValueError(f"layer_types has {len(types)} entries, num_hidden_layers={self.num_hidden_layers}")
        for i, t in enumerate(types):
            if t not in (JET, ATTN, SWA):
                raise ValueError(f"layer_types[{i}] is {t!r}: expected 'jet', 'attn' or 'swa'")
        return list(types)

    @property
    def attn_head_dim(self) -> int:
        return self.head_dim if self.head_dim is not None else self.hidden_size // self.num_attention_heads

    @property
    def full_attention_layers(self) -> List[int]:
        """The softmax layers that see the whole context (what QK-Restore restores by default)."""
        return [i for i, t in enumerate(self.layers) if t == ATTN]

    @property
    def window(self) -> int:
        swa = (self.efficient_attention_config or {}).get(SWA)
        if not swa or "window_size" not in swa:
            raise ValueError("an 'swa' layer needs efficient_attention_config.swa.window_size")
        return int(swa["window_size"])

    @property
    def jet(self) -> JetBlockSizes:
        given = (self.efficient_attention_config or {}).get(JET)
        if given is None:
            raise ValueError("a 'jet' layer needs efficient_attention_config.jet")
        unknown = set(given) - set(JET_BLOCK_DEFAULTS)
        if unknown:
            raise ValueError(f"efficient_attention_config.jet has unknown keys {sorted(unknown)}")
        j = {**JET_BLOCK_DEFAULTS, **given}
        # float(): NVlabs' 2B config writes "norm_eps": "1e-5"
        return JetBlockSizes(
            num_heads=int(j["num_heads"]), head_dim=int(j["head_dim"]), expand_v=float(j["expand_v"]),
            conv_size=int(j["conv_size"]), reduction=int(j["dconv_generator_reduction"]),
            norm_eps=float(j["norm_eps"]),
        )

    def validate(self) -> None:
        layers = self.layers
        if self.model_type != "jet_nemotron":
            raise ValueError(f"model_type is {self.model_type!r}, expected 'jet_nemotron'")
        if self.hidden_act != "silu":
            raise NotImplementedError(f"hidden_act {self.hidden_act!r}: only silu")
        if self.rope_scaling is not None:
            raise NotImplementedError("rope_scaling must be null")
        if set(self.efficient_attention_config or {}) - {JET, SWA}:
            raise ValueError("efficient_attention_config may hold only 'jet' and 'swa'")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError("num_attention_heads must be a multiple of num_key_value_heads")
        if self.attn_head_dim % 2:
            raise ValueError("the attention head dim must be even (RoPE)")
        if SWA in layers and self.window < 1:
            raise ValueError("window_size must be positive")
        if JET in layers:
            j = self.jet
            if j.dv * j.num_heads != j.num_heads * j.head_dim * j.expand_v:
                raise ValueError(f"expand_v {j.expand_v} times head_dim {j.head_dim} is not a whole head size")
            if j.generator_width < 1:
                raise ValueError("dconv_generator_reduction leaves the kernel generator no hidden units")

    # ---- json -------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict) -> "JetConfig":
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        if isinstance(known.get("layer_types"), str):  # NVlabs accepts a Python list literal
            known["layer_types"] = ast.literal_eval(known["layer_types"])
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    @classmethod
    def from_json(cls, path: str) -> "JetConfig":
        with open(path, "r", encoding="utf-8") as f:
            return cls.from_dict(json.load(f))

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        extra = d.pop("extra")
        # NVlabs reads head_dim with getattr(config, "head_dim", default): a
        # null would be taken as the value, so an unset one is left out.
        for optional in ("head_dim", "pad_token_id"):
            if d[optional] is None:
                del d[optional]
        return {**extra, **d}

    def to_json(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
            f.write("\n")


# --------------------------------------------------------------------------
# The gated delta rule. q, k [B, T, H, dk] as projected (L2-normed and
# scaled here), v [B, T, H, dv], g (log decay, <= 0) and beta [B, T, H].
# Returns (o [B, T, H, dv] f32, final state [B, H, dk, dv] f32).
# --------------------------------------------------------------------------


def l2norm(x: torch.Tensor) -> torch.Tensor:
    """x / sqrt(sum(x^2) + 1e-6) over the last axis (fla's, in f32)."""
    x = x.float()
    return x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) + 1e-6)


def _prepare(q, k, v, g, beta):
    """f32 [B, H, T, d] / [B, H, T] operands, q and k L2-normed, q scaled by dk^-0.5."""
    q, k = l2norm(q), l2norm(k)
    q = q * q.shape[-1] ** -0.5
    return (q.transpose(1, 2), k.transpose(1, 2), v.float().transpose(1, 2),
            g.float().transpose(1, 2), beta.float().transpose(1, 2))


def _zero_state(q, v):
    B, H, _, dk = q.shape
    return torch.zeros(B, H, dk, v.shape[-1], dtype=torch.float32, device=q.device)


def gated_delta_recurrent(q, k, v, g, beta, state=None):
    """The rule one token at a time, as SPEC-gdn writes it (decode's form)."""
    with _no_autocast(q.device):
        q, k, v, g, beta = _prepare(q, k, v, g, beta)
        S = _zero_state(q, v) if state is None else state.float()
        outs = []
        for t in range(q.shape[2]):
            S = S * g[:, :, t, None, None].exp()
            kt = k[:, :, t]
            u = beta[:, :, t, None] * (v[:, :, t] - torch.einsum("bhkv,bhk->bhv", S, kt))
            S = S + kt[..., :, None] * u[..., None, :]
            outs.append(torch.einsum("bhkv,bhk->bhv", S, q[:, :, t]))
        o = torch.stack(outs, dim=2) if outs else v.new_zeros(v.shape)
        return o.transpose(1, 2), S


def gated_delta_chunked(q, k, v, g, beta, state=None, chunk: int = 64):
    """The same rule over chunks of `chunk` tokens (the WY form).

    Inside a chunk, with G_t the cumulative log decay since its start and S0
    the state entering it, the deltas u_t = beta_t (v_t - S'_t^T k_t) solve
    the unit lower-triangular system

        (I + L) U = beta V - (beta e^G K) S0,  L[t, j] = beta_t e^(G_t - G_j) k_t.k_j  (j < t)

    so U = U~ - W S0 with U~, W one triangular solve for all chunks at once
    (they do not depend on S0); then per chunk, in order,

        O   = (Q e^G) S0 + (Q K^T * e^(G_t - G_j), j <= t) U
        S_C = e^(G_C) S0 + (K e^(G_C - G))^T U.

    A tail that does not fill a chunk is padded with beta = 0, g = 0, k = v = 0:
    those steps leave the state as it is and no earlier output sees them."""
    with _no_autocast(q.device):
        q, k, v, g, beta = _prepare(q, k, v, g, beta)
        B, H, T, dk = q.shape
        dv = v.shape[-1]
        S = _zero_state(q, v) if state is None else state.float()
        pad = -T % chunk
        if pad:
            q, k, v = (F.pad(x, (0, 0, 0, pad)) for x in (q, k, v))
            g, beta = F.pad(g, (0, pad)), F.pad(beta, (0, pad))
        N, C = (T + pad) // chunk, chunk
        q, k, v = (x.reshape(B, H, N, C, -1) for x in (q, k, v))
        g, beta = g.reshape(B, H, N, C), beta.reshape(B, H, N, C)

        G = g.cumsum(-1)
        idx = torch.arange(C, device=q.device)
        causal = idx[:, None] >= idx[None, :]
        strict = idx[:, None] > idx[None, :]
        # e^(G_t - G_j) for j <= t; masked before exp, where it would overflow
        decay = (G[..., :, None] - G[..., None, :]).masked_fill(~causal, float("-inf")).exp()
        # strictly lower; the unit diagonal is the solve's (unitriangular)
        L = (beta[..., None] * (k @ k.transpose(-1, -2)) * decay).masked_fill(~strict, 0.0)
        rhs = torch.cat([beta[..., None] * v, (beta * G.exp())[..., None] * k], dim=-1)
        solved = torch.linalg.solve_triangular(L, rhs, upper=False, unitriangular=True)
        u_free, w = solved[..., :dv], solved[..., dv:]

        scores = (q @ k.transpose(-1, -2)) * decay
        q_in = q * G.exp()[..., None]
        k_out = k * (G[..., -1:] - G).exp()[..., None]
        carry = G[..., -1].exp()[..., None, None]
        outs = []
        for n in range(N):
            u = u_free[:, :, n] - w[:, :, n] @ S
            outs.append(q_in[:, :, n] @ S + scores[:, :, n] @ u)
            S = carry[:, :, n] * S + k_out[:, :, n].transpose(-1, -2) @ u
        o = torch.stack(outs, dim=2).reshape(B, H, N * C, dv)[:, :, :T]
        return o.transpose(1, 2), S


def gated_delta_fla(q, k, v, g, beta, state=None):
    """flash-linear-attention's Triton kernel (CUDA only): the training
    speed-up, same contract (it L2-norms q and k itself)."""
    import fla_bare
    import triton

    fla_bare.install()
    from fla.ops.common import chunk_o
    from fla.ops.gated_delta_rule import chunk_gated_delta_rule

    # fla refuses Hopper with Triton in [3.4, 3.7.1) outright (its issue
    # #640): there Triton miscompiles the backward's dk at a key block of
    # 64 (BK = next_pow2(dk) on Hopper), and only there (the sweep:
    # 32 and 128 pass). Other head sizes go ahead; test_jet.py checks every
    # gradient against the chunked form on the machine that trains.
    if triton.next_power_of_2(q.shape[-1]) != 64:
        chunk_o.TRITON_ABOVE_3_4_0 = False

    dt = v.dtype
    o, S = chunk_gated_delta_rule(
        q.to(dt), k.to(dt), v, g.float(), beta.to(dt), scale=q.shape[-1] ** -0.5,
        initial_state=state, output_final_state=True, use_qk_l2norm_in_kernel=True,
    )
    return o.float(), S


def gated_delta_rule(q, k, v, g, beta, impl: str = "chunked", chunk: int = 64, state=None):
    if impl == "chunked":
        return gated_delta_chunked(q, k, v, g, beta, state, chunk=chunk)
    if impl == "recurrent":
        return gated_delta_recurrent(q, k, v, g, beta, state)
    if impl == "fla":
        if not q.is_cuda:
            raise ValueError("gdn_impl='fla' runs on a CUDA device only")
        return gated_delta_fla(q, k, v, g, beta, state)
    raise ValueError(f"unknown gdn_impl {impl!r}: expected one of {GDN_IMPLS}")


# --------------------------------------------------------------------------
# Mixers
# --------------------------------------------------------------------------


def sliding_window_mask(T: int, window: int, device) -> torch.Tensor:
    """[T, T] bool: query i sees keys i - window < j <= i (itself and the
    window - 1 before it, as NVlabs' mask and flash-attn's window - 1)."""
    i = torch.arange(T, device=device)
    d = i[:, None] - i[None, :]
    return (d >= 0) & (d < window)


class JetAttention(nn.Module):
    """Qwen2 attention: q/k/v biases, no o bias, GQA, RoPE; with `window`,
    sliding-window attention ("swa")."""

    def __init__(self, cfg: JetConfig, window: Optional[int]):
        super().__init__()
        D, H, Hkv, dh = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.attn_head_dim
        self.H, self.Hkv, self.dh = H, Hkv, dh
        self.window = window
        self.rope_theta = cfg.rope_theta
        self.q_proj = nn.Linear(D, H * dh, bias=True)
        self.k_proj = nn.Linear(D, Hkv * dh, bias=True)
        self.v_proj = nn.Linear(D, Hkv * dh, bias=True)
        self.o_proj = nn.Linear(H * dh, D, bias=False)

    def forward(self, x, positions, ctx):
        B, T, _ = x.shape
        H, Hkv, dh = self.H, self.Hkv, self.dh
        q = self.q_proj(x).view(B, T, H, dh).transpose(1, 2)
        k = self.k_proj(x).view(B, T, Hkv, dh).transpose(1, 2)
        v = self.v_proj(x).view(B, T, Hkv, dh).transpose(1, 2)
        cos, sin = rope_cos_sin(positions, dh, self.rope_theta)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        if H > Hkv:  # query head h reads kv head h // (H / Hkv)
            k = k.repeat_interleave(H // Hkv, dim=1)
            v = v.repeat_interleave(H // Hkv, dim=1)
        # Only a window shorter than the sequence needs a mask; otherwise
        # is_causal lets SDPA take its fused causal kernels.
        mask = sliding_window_mask(T, self.window, x.device) if self.window is not None and self.window < T else None
        dt = v.dtype
        o = F.scaled_dot_product_attention(q.to(dt), k.to(dt), v, attn_mask=mask, is_causal=mask is None)
        return self.o_proj(o.transpose(1, 2).reshape(B, T, H * dh).to(x.dtype))


class KernelGenerator(nn.Module):
    """kernel_t = w2 silu(w1 x_t) + b2: conv_size taps per value channel, per token."""

    def __init__(self, d_in: int, d_hidden: int, d_out: int):
        super().__init__()
        self.w1 = nn.Linear(d_in, d_hidden, bias=False)
        self.w2 = nn.Linear(d_hidden, d_out, bias=True)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)))


class DynamicConv(nn.Module):
    """The JetBlock's short convolution on v, its kernel generated from the
    layer input: y_t[c] = silu(sum_w kernel_t[c, w] v_{t-W+1+w}[c])."""

    def __init__(self, channels: int, width: int, d_in: int, d_hidden: int):
        super().__init__()
        self.channels, self.width = channels, width
        self.kernel_generator = KernelGenerator(d_in, d_hidden, channels * width)

    def forward(self, v, x):
        B, T, C = v.shape
        W = self.width
        # channel-major: generator output index c * W + w is channel c, tap w
        kernel = self.kernel_generator(x).float().view(B, T, C, W)
        taps = F.pad(v.float(), (0, 0, W - 1, 0)).unfold(1, W, 1)  # [B, T, C, W]: v_{t-W+1 .. t}
        return F.silu((taps * kernel).sum(-1))


class JetBlock(nn.Module):
    """SiLU q/k, dynamically convolved v, the gated delta rule, a gated
    per-head RMSNorm, o_proj."""

    def __init__(self, cfg: JetConfig):
        super().__init__()
        j = cfg.jet
        D = cfg.hidden_size
        self.nh, self.dk, self.dv = j.num_heads, j.dk, j.dv
        self.norm_eps = j.norm_eps
        self.q_proj = nn.Linear(D, j.key_width, bias=False)
        self.k_proj = nn.Linear(D, j.key_width, bias=False)
        self.v_proj = nn.Linear(D, j.value_width, bias=False)
        self.a_proj = nn.Linear(D, j.num_heads, bias=False)
        self.b_proj = nn.Linear(D, j.num_heads, bias=False)
        self.A_log = nn.Parameter(torch.zeros(j.num_heads))
        self.dt_bias = nn.Parameter(torch.zeros(j.num_heads))
        self.dynamic_conv1d = DynamicConv(j.value_width, j.conv_size, D, j.generator_width)
        self.g_proj = nn.Linear(D, j.value_width, bias=False)
        self.o_norm = RMSNorm(j.dv, j.norm_eps)
        self.o_proj = nn.Linear(j.value_width, D, bias=False)

    def forward(self, x, positions, ctx):
        B, T, _ = x.shape
        nh, dk, dv = self.nh, self.dk, self.dv
        q = F.silu(self.q_proj(x)).view(B, T, nh, dk)
        k = F.silu(self.k_proj(x)).view(B, T, nh, dk)
        v = self.dynamic_conv1d(self.v_proj(x), x).view(B, T, nh, dv)
        beta = torch.sigmoid(self.b_proj(x).float())
        g = -self.A_log.float().exp() * F.softplus(self.a_proj(x).float() + self.dt_bias.float())
        o, _ = gated_delta_rule(q, k, v, g, beta, impl=ctx["gdn_impl"], chunk=ctx["chunk"])
        z = self.g_proj(x).view(B, T, nh, dv)
        o = rmsnorm(o, self.o_norm.weight, self.norm_eps) * F.silu(z.float())
        return self.o_proj(o.reshape(B, T, nh * dv).to(x.dtype))


# --------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------


class JetDecoderLayer(nn.Module):
    def __init__(self, cfg: JetConfig, kind: str):
        super().__init__()
        self.kind = kind
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        if kind == JET:
            self.self_attn = JetBlock(cfg)
        else:
            self.self_attn = JetAttention(cfg, cfg.window if kind == SWA else None)
        self.mlp = MLP(cfg)

    def forward(self, x, positions, ctx):
        x = x + self.self_attn(self.input_layernorm(x), positions, ctx)
        return x + self.mlp(self.post_attention_layernorm(x))


class JetModel(nn.Module):
    def __init__(self, cfg: JetConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([JetDecoderLayer(cfg, t) for t in cfg.layers])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class JetNemotron(nn.Module):
    """Jet-Nemotron causal LM. Parameter names: NVlabs' (model.embed_tokens,
    model.layers.{i}.{input_layernorm, self_attn.…, post_attention_layernorm,
    mlp.…}, model.norm; lm_head.weight only when tie_word_embeddings is false).

    gdn_impl: how JetBlocks run the gated delta rule unless a forward says
    otherwise: "chunked" (pure PyTorch, the default), "recurrent" (token by
    token) or "fla" (flash-linear-attention's Triton kernel, CUDA)."""

    def __init__(self, cfg: JetConfig, gdn_impl: str = "chunked"):
        super().__init__()
        cfg.validate()
        if gdn_impl not in GDN_IMPLS:
            raise ValueError(f"unknown gdn_impl {gdn_impl!r}: expected one of {GDN_IMPLS}")
        self.config = cfg
        self.gdn_impl = gdn_impl
        self.model = JetModel(cfg)
        self.lm_head = None if cfg.tie_word_embeddings else nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        self.reset_parameters()

    def reset_parameters(self, std: Optional[float] = None) -> None:
        """Normal(0, std) for projections and embeddings (std/sqrt(2L) for
        o_proj and down_proj, as HypeNet's reference), ones for norms, zero
        biases; the JetBlocks' decays as NVlabs' JetBlock draws them (A in
        U(0, 16), dt log-uniform in [1e-3, 0.1]); the dynamic convolution's
        static part (w2.bias) the identity on the newest tap, so that a
        JetBlock starts as a gated delta rule on silu(v_proj x) while the
        generated part is small."""
        std = self.config.initializer_range if std is None else std
        L = self.config.num_hidden_layers
        for name, p in self.named_parameters():
            if p.is_meta:
                continue
            with torch.no_grad():
                if name.endswith("A_log"):
                    p.copy_(torch.empty_like(p).uniform_(0, 16).clamp_min(1e-4).log())
                elif name.endswith("dt_bias"):
                    lo, hi = math.log(1e-3), math.log(0.1)
                    dt = (torch.rand_like(p) * (hi - lo) + lo).exp().clamp_min(1e-4)
                    p.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
                elif name.endswith("kernel_generator.w2.bias"):
                    p.copy_(identity_taps(p.numel(), self.config.jet.conv_size))
                elif name.endswith("bias"):
                    p.zero_()
                elif p.dim() == 1:
                    p.fill_(1.0)
                elif name.endswith("o_proj.weight") or name.endswith("down_proj.weight"):
                    p.normal_(0.0, std / math.sqrt(2 * L))
                else:
                    p.normal_(0.0, std)

    def no_weight_decay(self) -> List[str]:
        """The decays' parameters: weight decay would pull them toward A = 1, dt = log 2."""
        return [n for n, _ in self.named_parameters() if n.endswith(("A_log", "dt_bias"))]

    def head_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.lm_head is None else self.lm_head.weight

    def forward(self, ids: torch.Tensor, gdn_impl: Optional[str] = None, chunk: int = 64) -> torch.Tensor:
        """ids [B, T] (long), from position 0. Returns logits [B, T, V] (f32)."""
        if ids.dim() == 1:
            ids = ids[None]
        positions = torch.arange(ids.shape[1], device=ids.device)
        ctx = {"gdn_impl": gdn_impl or self.gdn_impl, "chunk": chunk}
        x = self.model.embed_tokens(ids)
        for layer in self.model.layers:
            x = layer(x, positions, ctx)
        x = self.model.norm(x)
        return F.linear(x, self.head_weight()).float()


def identity_taps(n: int, width: int) -> torch.Tensor:
    """Flat channel-major [C * W] kernel with 1 on each channel's newest tap."""
    taps = torch.zeros(n // width, width)
    taps[:, -1] = 1.0
    return taps.reshape(-1)


# --------------------------------------------------------------------------
# Save / load (Hugging Face folder layout, NVlabs' names)
# --------------------------------------------------------------------------


def save_pretrained(model: JetNemotron, cfg: JetConfig, folder: str, dtype=torch.bfloat16) -> None:
    """Write folder/config.json (NVlabs' format) and folder/model.safetensors
    (the tied LM head is not stored). HypeNet's writer: the same layout."""
    _save_pretrained(model, cfg, folder, dtype=dtype)


def load_pretrained(folder: str, device="cpu", dtype=torch.float32, gdn_impl: str = "chunked"):
    """Returns (model, cfg); model in eval mode on `device` with `dtype`
    (a bf16 checkpoint is upcast exactly when dtype is f32)."""
    cfg = JetConfig.from_json(os.path.join(folder, "config.json"))
    tensors = load_state_tensors(folder)
    with torch.device("meta"):
        model = JetNemotron(cfg, gdn_impl=gdn_impl)
    if cfg.tie_word_embeddings:
        tensors.pop("lm_head.weight", None)
    model.load_state_dict(tensors, strict=True, assign=True)
    model = model.to(device=device, dtype=dtype)
    model.eval()
    return model, cfg
