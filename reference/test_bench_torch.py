"""Tests for bench_torch.py (CPU, a few seconds).

Run: python -m pytest reference/test_bench_torch.py -q
"""

import json
import os
import re
import sys

import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_torch as bt  # noqa: E402
import hypenet as hn  # noqa: E402

SYNTH_RS = os.path.join(HERE, "..", "src", "synth.rs")


def rust_presets():
    """(shapes by preset, flags of the shared base) parsed from src/synth.rs."""
    src = open(SYNTH_RS, encoding="utf-8").read()
    body = src[src.index("pub fn preset_config"):]
    body = body[: body.index("\n}\n")]
    shapes = {}
    pat = (r'"(\w+)" => base\((\d+), (\d+), (\d+), mixers\((\d+), &\[([\d, ]*)\]\), '
           r'(\d+), (\d+), (\d+), (\d+), (\d+)\)')
    for m in re.finditer(pat, body):
        g = m.groups()
        soft = [int(v) for v in g[5].replace(" ", "").split(",") if v]
        shapes[g[0]] = tuple(int(v) for v in g[1:5]) + (soft,) + tuple(int(v) for v in g[6:])
    base = body[body.index("serde_json::json!({"): body.index("})")]
    flags = {}
    for k, v in re.findall(r'"(\w+)": (true|false|null|"[^"]*"|[-\d.e]+)(?=[,\s])', base):
        flags[k] = json.loads(v)
    return shapes, flags


def test_presets_match_synth_rs():
    shapes, flags = rust_presets()
    assert set(shapes) == set(bt.PRESET_SHAPES)
    for name, s in shapes.items():
        assert bt.PRESET_SHAPES[name] == s, name
    assert len(flags) >= 15, flags
    for k, v in flags.items():
        assert bt._BASE[k] == v, k
    d = bt.preset_dict("2b")
    assert d["mixer_types"].count(hn.ATTN) == 7 and len(d["mixer_types"]) == 28
    assert [i for i, m in enumerate(d["mixer_types"]) if m == hn.ATTN] == [2, 3, 6, 8, 9, 21, 25]
    cfg = hn.Config.from_dict(d)
    cfg.validate()
    assert cfg.lscale == pytest.approx(128 ** -0.5)
    assert (cfg.lnh, cfg.lnkv, cfg.ldim) == (16, 16, 128)


def test_2b_param_count_and_flops():
    cfg = hn.Config.from_dict(bt.preset_dict("2b"))
    with torch.device("meta"):
        model = hn.HypeNet(cfg)
    D, I, V = 2048, 6144, 151936
    mlp = 3 * D * I
    soft = D * (16 * 128 * 2 + 8 * 128 * 2) + 16 * 128 * D + 2 * 128
    light = 5 * D * D + 2 * 128 + D
    expect = V * D + D + 28 * (mlp + 2 * D) + 7 * soft + 21 * light
    assert sum(p.numel() for p in model.parameters()) == expect
    T = 4096
    fl = bt.forward_flops(cfg, T, 64)
    assert fl["mlp"] == 28 * 2 * T * D * 3 * I
    assert fl["lm_head_all_positions"] == 2 * T * V * D
    # projections + MLP: 2 * T * (matrix params of the layers)
    assert fl["mlp"] + fl["softmax_proj"] + fl["lightning_proj"] == 2 * T * (expect - V * D - D - 28 * 2 * D - 7 * 256 - 21 * (256 + D))
    assert 13.5e12 < fl["body"] < 14.5e12


def test_lightning_core_flops_with_remainder():
    cfg = hn.Config.from_dict(bt.preset_dict("tiny"))
    a = bt.forward_flops(cfg, 128, 64)["lightning_core_chunked"]
    b = bt.forward_flops(cfg, 130, 64)["lightning_core_chunked"]
    nh, dl, n = 2, 20, 2
    assert a == n * 2 * nh * (4 * 64 * 64 * dl + 4 * 64 * dl * dl)
    assert b - a == n * nh * (4 * 2 * 2 * dl + 4 * 2 * dl * dl)


def test_parse_shapes():
    assert bt.parse_shapes("4096x2048x2048, 1x2x3") == [(4096, 2048, 2048), (1, 2, 3)]
    for bad in ("4x4", "0x1x1", "axbxc"):
        with pytest.raises((SystemExit, ValueError)):
            bt.parse_shapes(bad)


def test_matmul_cpu(tmp_path):
    out = tmp_path / "mm.json"
    res = bt.main(["matmul", "--device", "cpu", "--shapes", "33x70x45,8x259x40", "--reps", "2", "--warmup", "1",
                   "--json", str(out)])
    assert json.loads(out.read_text())["results"][1]["N"] == 259
    for r in res["results"]:
        assert r["finite"] and r["rel_err"] < 1e-5 and r["median_ms"] > 0


def test_prefill_cpu(tmp_path):
    out = tmp_path / "p.json"
    # 70 tokens: one full chunk of 64 and a remainder, so both chunk paths run
    res = bt.main(["prefill", "--device", "cpu", "--preset", "tiny", "--tokens", "70", "--reps", "1",
                   "--warmup", "0", "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["logits_shape"] == [1, 70, 259] and saved["logits_finite"]
    assert res["check_last_logits_rel_err"] < 1e-5
    assert set(res["results"]) == {"forward_all_logits", "body_only", "body_last_logits"}
    assert saved["config"]["mixer_types"] == bt.preset_dict("tiny")["mixer_types"]


def test_body_matches_model():
    cfg = hn.Config.from_dict(bt.preset_dict("tiny"))
    torch.manual_seed(0)
    model = hn.HypeNet(cfg).eval()
    ids = torch.randint(0, cfg.vocab_size, (1, 37))
    body = bt.make_body(model, "chunked", "sdpa", 16)
    with torch.no_grad():
        full = model(ids, chunk=16)
        mine = torch.nn.functional.linear(body(ids), model.head_weight()).float()
    torch.testing.assert_close(mine, full, rtol=0, atol=0)
