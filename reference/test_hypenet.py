"""Tests for the HypeNet PyTorch reference (CPU, a few seconds).

Run: python -m pytest reference -q
"""

import json
import math
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import hypenet as hn  # noqa: E402

torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))


def small_cfg(**kw):
    base = dict(
        vocab_size=97,
        hidden_size=48,
        intermediate_size=96,
        num_hidden_layers=3,
        mixer_types=["lightning-attn", "attn", "lightning-attn"],
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        lightning_nh=6,
        lightning_nkv=3,
        lightning_head_dim=8,
        attn_logits_scaling="hype 500",
        bos_token_id=94,
        eos_token_id=95,
        pad_token_id=96,
    )
    base.update(kw)
    return hn.Config(**base)


def make_model(cfg, seed=0, std=0.2):
    torch.manual_seed(seed)
    m = hn.HypeNet(cfg)
    # larger init than training so that every path visibly matters
    m.reset_parameters(std=std)
    with torch.no_grad():
        for n, p in m.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    return m.eval()


def rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


# ---------------------------------------------------------------- slopes


def test_slopes_power_of_two():
    assert hn.alibi_slopes(8) == [0.5, 0.25, 0.125, 0.0625, 0.03125, 0.015625, 0.0078125, 0.00390625]
    assert hn.alibi_slopes(1) == [2.0 ** -8]
    assert hn.alibi_slopes(2) == [2.0 ** -4, 2.0 ** -8]


def test_slopes_non_power_of_two():
    # m = 4: slopes(4) = 2^-2, 2^-4, 2^-6, 2^-8; then slopes(8)[0::2] = 2^-1, 2^-3, ...
    assert hn.alibi_slopes(6) == [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125]
    s12 = hn.alibi_slopes(12)
    assert s12[:8] == hn.alibi_slopes(8)
    assert s12[8:] == [2.0 ** -0.5, 2.0 ** -1.5, 2.0 ** -2.5, 2.0 ** -3.5]


# ---------------------------------------------------------------- Lightning kernels


@pytest.mark.parametrize("H", [6, 8])
@pytest.mark.parametrize("T", [1, 5, 64, 100, 200])
@pytest.mark.parametrize("chunk", [16, 64])
@pytest.mark.parametrize("with_state", [False, True])
def test_chunked_matches_recurrent_kernel(H, T, chunk, with_state):
    g = torch.Generator().manual_seed(H * 1000 + T + chunk)
    B, d = 2, 8
    q = torch.randn(B, H, T, d, generator=g)
    k = torch.randn(B, H, T, d, generator=g)
    v = torch.randn(B, H, T, d, generator=g)
    s0 = torch.randn(B, H, d, d, generator=g) if with_state else None
    slopes = hn.alibi_slopes(H)
    o_r, s_r = hn.lightning_recurrent(q, k, v, slopes, d ** -0.5, s0)
    o_c, s_c = hn.lightning_chunked(q, k, v, slopes, d ** -0.5, s0, chunk=chunk)
    assert o_c.dtype == torch.float32
    assert rel(o_c, o_r) < 1e-5
    assert rel(s_c, s_r) < 1e-5


def test_lightning_matches_explicit_sum():
    # o(t) = scale * sum_{s<=t} gamma^(t-s) (q(t).k(s)) v(s), computed in f64
    g = torch.Generator().manual_seed(3)
    B, H, T, d = 1, 6, 40, 4
    q, k, v = (torch.randn(B, H, T, d, generator=g) for _ in range(3))
    slopes = hn.alibi_slopes(H)
    o, _ = hn.lightning_chunked(q, k, v, slopes, 0.5, chunk=16)
    gam = torch.exp(-torch.tensor(slopes, dtype=torch.float64)).view(H, 1, 1)
    t = torch.arange(T, dtype=torch.float64)
    dec = torch.where(t[:, None] >= t[None, :], gam ** (t[:, None] - t[None, :]).clamp(min=0), torch.zeros(()))
    ref = 0.5 * torch.matmul(torch.matmul(q.double(), k.double().transpose(-1, -2)) * dec, v.double())
    assert rel(o.double(), ref) < 1e-5


def test_chunked_gradients_match_recurrent():
    g = torch.Generator().manual_seed(5)
    B, H, T, d = 1, 6, 37, 4
    base = [torch.randn(B, H, T, d, generator=g) for _ in range(3)]
    w = torch.randn(B, H, T, d, generator=g)
    grads = []
    for fn in (hn.lightning_recurrent, lambda *a: hn.lightning_chunked(*a, chunk=8)):
        ts = [x.clone().requires_grad_(True) for x in base]
        o, _ = fn(*ts, hn.alibi_slopes(H), 0.5)
        (o * w).sum().backward()
        grads.append([x.grad for x in ts])
    for a, b in zip(*grads):
        assert rel(a, b) < 1e-5


@pytest.mark.parametrize(
    "kw",
    [
        dict(),
        dict(lightning_use_rope=False, lightning_use_qk_norm=False),
        dict(lightning_use_output_norm=False, lightning_use_output_gate=False, attn_use_output_gate=False),
        dict(lightning_nh=8, lightning_nkv=8, lightning_scale="1/d", attn_use_rope=True),
        dict(lightning_nh=8, lightning_nkv=2, lightning_scale="none", attention_bias=True),
        dict(lightning_nh=None, lightning_nkv=None, lightning_head_dim=None, tie_word_embeddings=False),
    ],
)
def test_model_chunked_matches_recurrent(kw):
    cfg = small_cfg(**kw)
    m = make_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 77), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        lc, ec = m(ids, return_states=True)
        lr, er = m(ids, lightning_mode="recurrent", return_states=True)
    assert rel(lc, lr) < 1e-5
    assert set(ec["states"]) == {0, 2}
    for i in ec["states"]:
        assert ec["states"][i].shape == (2, cfg.lnh, cfg.ldim, cfg.ldim)
        assert rel(ec["states"][i], er["states"][i]) < 1e-5


# ---------------------------------------------------------------- softmax path


@pytest.mark.parametrize("scaling", [None, "hype", "hype 500", 0.7])
@pytest.mark.parametrize("rope", [False, True])
def test_sdpa_matches_explicit(scaling, rope):
    cfg = small_cfg(attn_logits_scaling=scaling, attn_use_rope=rope)
    m = make_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (2, 50), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        a = m(ids)
        b = m(ids, attn_impl="explicit")
        c, ex = m(ids, return_attn=(1, 3))
    assert rel(a, b) < 1e-5
    assert rel(c, b) < 1e-6
    p = ex["attn"]
    assert p.shape == (2, 50, 50)
    assert torch.allclose(p.sum(-1), torch.ones(2, 50), atol=1e-5)
    assert (p.triu(1) == 0).all()


def test_parse_logits_scaling():
    assert hn.parse_logits_scaling(None) == ("none", None)
    assert hn.parse_logits_scaling("hype") == ("hype", 362.0)
    assert hn.parse_logits_scaling("hype 500") == ("hype", 500.0)
    assert hn.parse_logits_scaling(0.5) == ("const", 0.5)


def test_hype_factor_by_hand():
    f = hn.hype_factor(torch.tensor([0, 1, 10, 1000]), 500.0)
    want = [1.0, math.log(501) / math.log(500), math.log(510) / math.log(500), math.log(1500) / math.log(500)]
    assert torch.allclose(f, torch.tensor(want), rtol=1e-6)


def test_attention_probs_by_hand():
    """One softmax layer, GQA, HyPE, RoPE: rebuild head 3's probabilities
    directly from the weights and compare with return_attn."""
    A = 500.0
    cfg = small_cfg(num_hidden_layers=1, mixer_types=["attn"], attn_use_rope=True,
                    attn_logits_scaling=f"hype {A}")
    m = make_model(cfg)
    T, h = 12, 3
    ids = torch.randint(0, cfg.vocab_size, (1, T), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        _, ex = m(ids, return_attn=(0, h), start_pos=7)
        L = m.model.layers[0]
        at = L.self_attn
        x = m.model.embed_tokens(ids)[0].double()
        x = x / torch.sqrt((x * x).mean(-1, keepdim=True) + cfg.rms_norm_eps) * L.input_layernorm.weight.double()
        dh = cfg.head_dim
        g = h // (cfg.num_attention_heads // cfg.num_key_value_heads)  # = 1
        q = (x @ at.q_proj.weight.double().T)[:, h * dh:(h + 1) * dh]
        k = (x @ at.k_proj.weight.double().T)[:, g * dh:(g + 1) * dh]

        def norm(y, w):
            return y / torch.sqrt((y * y).mean(-1, keepdim=True) + cfg.rms_norm_eps) * w.double()

        q, k = norm(q, at.q_norm.weight), norm(k, at.k_norm.weight)
        pos = torch.arange(7, 7 + T, dtype=torch.float64)

        def rope(y):
            out = torch.empty_like(y)
            for t in range(T):
                for j in range(dh // 2):
                    a = pos[t] * cfg.rope_theta ** (-2.0 * j / dh)
                    c, s = math.cos(a), math.sin(a)
                    out[t, j] = y[t, j] * c - y[t, j + dh // 2] * s
                    out[t, j + dh // 2] = y[t, j + dh // 2] * c + y[t, j] * s
            return out

        q, k = rope(q), rope(k)
        q = q * (torch.log(pos + A) / math.log(A))[:, None]
        logits = (q @ k.T) / math.sqrt(dh)
        logits = logits.masked_fill(torch.ones(T, T).triu(1).bool(), float("-inf"))
        p = torch.softmax(logits, -1)
    assert (ex["attn"][0].double() - p).abs().max() < 1e-5


def test_hype_changes_logits_but_not_position_zero():
    cfg_a = small_cfg(attn_logits_scaling=None, mixer_types=["attn", "attn", "attn"])
    cfg_b = small_cfg(attn_logits_scaling="hype 20", mixer_types=["attn", "attn", "attn"])
    ma = make_model(cfg_a)
    mb = hn.HypeNet(cfg_b)
    mb.load_state_dict(ma.state_dict())
    ids = torch.randint(0, cfg_a.vocab_size, (1, 30), generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        la, lb = ma(ids), mb(ids)
    # at t = 0 the factor is 1 (and only one key is visible anyway)
    assert torch.allclose(la[:, 0], lb[:, 0], atol=1e-6)
    assert (la[:, 5:] - lb[:, 5:]).abs().max() > 1e-3
    # switching HyPE on through model.config at runtime takes effect
    ma.config.attn_logits_scaling = "hype 20"
    with torch.no_grad():
        assert torch.equal(ma(ids), lb)


def test_rope_rotate_half_layout():
    x = torch.arange(8, dtype=torch.float32).view(1, 8) + 1
    cos, sin = hn.rope_cos_sin(torch.tensor([3]), 8, 10000.0)
    y = hn.apply_rope(x, cos, sin)[0]
    for j in range(4):
        a = 3 * 10000.0 ** (-2 * j / 8)
        assert abs(y[j] - (x[0, j] * math.cos(a) - x[0, j + 4] * math.sin(a))) < 1e-5
        assert abs(y[j + 4] - (x[0, j + 4] * math.cos(a) + x[0, j] * math.sin(a))) < 1e-5


# ---------------------------------------------------------------- properties


@pytest.mark.parametrize("mode", ["chunked", "recurrent"])
def test_causal(mode):
    cfg = small_cfg(attn_use_rope=True)
    m = make_model(cfg)
    T = 70
    ids = torch.randint(0, cfg.vocab_size, (1, T), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        base = m(ids, lightning_mode=mode, chunk=16)
        for t in [0, 15, 16, 40, 68]:
            ids2 = ids.clone()
            ids2[0, t + 1] = (ids2[0, t + 1] + 1) % cfg.vocab_size
            l2 = m(ids2, lightning_mode=mode, chunk=16)
            assert (l2[:, : t + 1] - base[:, : t + 1]).abs().max() < 1e-6
            assert (l2[:, t + 1] - base[:, t + 1]).abs().max() > 1e-4


def test_cache_matches_full_forward_and_generate():
    cfg = small_cfg(attn_use_rope=True)
    m = make_model(cfg, std=0.05)
    ids = torch.randint(0, cfg.vocab_size, (1, 40), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        full = m(ids)
        cache = hn.Cache()
        parts = [m(ids[:, :13], cache=cache), m(ids[:, 13:30], cache=cache)]
        parts += [m(ids[:, t:t + 1], cache=cache) for t in range(30, 40)]
    assert rel(torch.cat(parts, 1), full) < 1e-5
    a = hn.generate(m, ids[0].tolist(), 12, stop_ids=[])
    b = hn.generate(m, ids[0].tolist(), 12, stop_ids=[], use_cache=False)
    assert a == b and len(a) == 12
    c = hn.generate(m, ids[0].tolist(), 12, stop_ids=[a[3]])
    assert c[-1] == a[3] and len(c) <= 4


def test_start_pos_shifts_positions():
    cfg = small_cfg(attn_use_rope=True)
    m = make_model(cfg)
    ids = torch.randint(0, cfg.vocab_size, (1, 20), generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        a, b = m(ids), m(ids, start_pos=100)
    assert (a - b).abs().max() > 1e-4


def test_autocast_bf16_and_backward():
    cfg = small_cfg()
    m = make_model(cfg, std=0.02).train()
    ids = torch.randint(0, cfg.vocab_size, (2, 70), generator=torch.Generator().manual_seed(10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = m(ids)
    assert logits.dtype == torch.float32
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, cfg.vocab_size), ids[:, 1:].reshape(-1))
    loss.backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    mb = make_model(cfg).to(torch.bfloat16)
    with torch.no_grad():
        lb = mb(ids)
    assert lb.dtype == torch.float32 and torch.isfinite(lb).all()


# ---------------------------------------------------------------- config and files


def test_config_json_round_trip(tmp_path):
    cfg = small_cfg(attn_logits_scaling="hype 500")
    p = tmp_path / "config.json"
    cfg.to_json(str(p))
    d = json.loads(p.read_text())
    for key in ["vocab_size", "mixer_types", "lightning_nh", "attn_logits_scaling", "lightning_scale",
                "tie_word_embeddings", "torch_dtype", "model_type", "rms_norm_eps", "rope_theta"]:
        assert key in d
    d["some_unknown_field"] = 123
    d["mixer_types"] = ["lightning_attn", "attn", "lightning_attn"]
    p.write_text(json.dumps(d))
    back = hn.Config.from_json(str(p))
    assert back.mixers == ["lightning-attn", "attn", "lightning-attn"]
    assert back.query_scaling == ("hype", 500.0)
    assert hn.Config(num_hidden_layers=2, mixer_types=[]).mixers == ["attn", "attn"]
    with pytest.raises(NotImplementedError):
        hn.HypeNet(small_cfg(lightning_use_short_conv=True))


@pytest.mark.parametrize("tied", [True, False])
def test_save_load_round_trip_bf16(tmp_path, tied):
    from safetensors import safe_open

    cfg = small_cfg(tie_word_embeddings=tied, attention_bias=True)
    m = make_model(cfg)
    hn.save_pretrained(m, cfg, str(tmp_path))
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
        assert all(f.get_tensor(k).dtype == torch.bfloat16 for k in keys)
    assert ("lm_head.weight" in keys) == (not tied)
    assert "model.embed_tokens.weight" in keys and "model.norm.weight" in keys
    assert "model.layers.0.self_attn.z_proj.weight" in keys
    assert "model.layers.0.self_attn.o_norm.weight" in keys
    assert "model.layers.1.self_attn.o_gate.weight" in keys
    assert "model.layers.1.self_attn.q_proj.bias" in keys
    assert "model.layers.2.mlp.down_proj.weight" in keys
    assert json.loads((tmp_path / "config.json").read_text())["torch_dtype"] == "bfloat16"

    want = {k: v.to(torch.bfloat16) for k, v in m.state_dict().items()}
    m2, cfg2 = hn.load_pretrained(str(tmp_path), "cpu", torch.bfloat16)
    got = m2.state_dict()
    assert set(got) == set(want)
    for k in want:
        assert torch.equal(got[k], want[k]), k
    m3, _ = hn.load_pretrained(str(tmp_path), "cpu", torch.float32)
    for k, v in m3.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, want[k].float())
    if tied:
        assert m3.head_weight() is m3.model.embed_tokens.weight
    assert cfg2 == dataclass_replace(cfg, torch_dtype="bfloat16")


def dataclass_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


def test_load_sharded(tmp_path):
    from safetensors.torch import load_file, save_file

    cfg = small_cfg()
    m = make_model(cfg)
    hn.save_pretrained(m, cfg, str(tmp_path))
    allt = load_file(str(tmp_path / "model.safetensors"))
    os.remove(tmp_path / "model.safetensors")
    names = sorted(allt)
    half = len(names) // 2
    shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
    wm = {}
    for fn, ns in shards.items():
        save_file({n: allt[n] for n in ns}, str(tmp_path / fn))
        wm.update({n: fn for n in ns})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    m2, _ = hn.load_pretrained(str(tmp_path))
    for k, v in m2.state_dict().items():
        assert torch.equal(v, allt[k].float())


# ---------------------------------------------------------------- tokenizer


def test_byte_tokenizer(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    import make_tokenizer

    path = tmp_path / "tokenizer.json"
    make_tokenizer.write(str(path))
    tok = tokenizers.Tokenizer.from_file(str(path))
    assert tok.get_vocab_size() == 259
    assert [tok.token_to_id(s) for s in ["<bos>", "<eos>", "<pad>"]] == [256, 257, 258]
    texts = ["hello world", " leading space", "  two\n\nlines\r\n\tend ", "é 中 😀 naïve", "\x00\x7f", "",
             "a" * 1000]
    for s in texts:
        ids = tok.encode(s).ids
        assert ids == list(s.encode("utf-8")), s
        assert tok.decode(ids) == s
    assert tok.decode([256, 104, 105, 257], skip_special_tokens=False) == "<bos>hi<eos>"
    assert tok.decode([256, 104, 105, 257, 258]) == "hi"
