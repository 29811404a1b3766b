"""Golden fixtures for Qwen3.5 (issue 26), made by Hugging Face
transformers' own Qwen3.5 classes on their pure PyTorch paths (the
`torch_chunk_gated_delta_rule` / `torch_recurrent_gated_delta_rule` and
`causal_conv1d` fallbacks): tiny random models in f32 and bf16, and their
logits on fixed ids longer than one chunk of the gated delta rule (64).

- `qwen35-text-*`: `Qwen3_5ForCausalLM` (`qwen3_5_text`), untied head;
- `qwen35-vl-*`: `Qwen3_5ForConditionalGeneration` (the `qwen3_5`
  wrapper: `text_config`, `model.language_model.*`, a tiny vision tower
  under `model.visual.*`), tied head.

Both have more value heads than key heads in the gated-delta layers, a
partial RoPE (0.25 of 16 dims), and 2 softmax layers in 8 (3:1).

Run by hand (CPU is enough; transformers 5.25.0, torch 2.11.0) when the
family or transformers change:

    python3 reference/qwen35_fixtures.py tests/fixtures/qwen35

writes DIR/<name>-<dtype>/{config.json,model.safetensors} and
DIR/golden.safetensors with `ids` and `logits_<name>_<dtype>` ([T, V],
f32; the bf16 checkpoints' logits from their bf16 weights upcast to f32,
as qklab's engines compute).

`--merge-pair QKLAB` is the merge check: an "SFT" copy of each f32 fixture
with every tensor perturbed, `QKLAB merge --layers 3` (QK-Restore of
softmax layer 3), then the output loaded in transformers: every tensor
kept, layer 3's query rows of q_proj and all of k_proj pre's, its gate
rows and everything else (the vision tower included) the SFT copy's, bit
for bit, and logits equal to the same merge made here in torch from
SPEC-gdn:

    python3 reference/qwen35_fixtures.py --merge-pair target/debug/qklab
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from safetensors.torch import save_file

VOCAB = 259
IDS = [(i * 37 + 11) % VOCAB for i in range(150)]
SOFTMAX_LAYER = 3
HEAD_DIM = 16

TEXT = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=8,
    num_attention_heads=4, num_key_value_heads=2, head_dim=HEAD_DIM,
    linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8, linear_value_head_dim=8,
    linear_conv_kernel_dim=4, max_position_embeddings=512, rms_norm_eps=1e-6,
    rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=0.25),
    bos_token_id=256, eos_token_id=257,
)
VISION = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=32,
              patch_size=4, temporal_patch_size=2, spatial_merge_size=2, num_position_embeddings=16)


def models():
    import transformers as tf
    return {
        "qwen35-text": lambda: tf.Qwen3_5ForCausalLM(tf.Qwen3_5TextConfig(**TEXT, tie_word_embeddings=False)),
        "qwen35-vl": lambda: tf.Qwen3_5ForConditionalGeneration(tf.Qwen3_5Config(
            text_config=dict(TEXT), vision_config=VISION, tie_word_embeddings=True)),
    }


def randomize(model) -> None:
    """Random norms, decays and biases too, so that a dropped one shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1:
                continue
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.empty_like(p).uniform_(0.5, 4.0)))
            elif "norm" in name and "linear_attn" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))  # the gated norm: w * ...
            else:
                p.copy_(0.2 * torch.randn_like(p))  # zero-centred norms (1 + w), dt_bias


def logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits[0]


def make(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    golden = {}
    ids = torch.tensor([IDS])
    for seed, (name, build) in enumerate(models().items()):
        torch.manual_seed(seed)
        model = build().eval()
        randomize(model)
        state = model.state_dict()
        for dtype in (torch.float32, torch.bfloat16):
            tag = f"{name}-{'f32' if dtype == torch.float32 else 'bf16'}"
            path = os.path.join(out, tag)
            m = build().eval()
            m.load_state_dict(state)
            m.to(dtype).save_pretrained(path, safe_serialization=True)
            ref = build().eval()
            ref.load_state_dict({k: v.to(dtype).to(torch.float32) for k, v in state.items()})
            lg = logits(ref, ids)
            golden[f"logits_{tag.replace('-', '_')}"] = lg.contiguous()
            print(f"{tag}: {sum(p.numel() for p in m.parameters())} parameters, logits {list(lg.shape)}")
    golden["ids"] = ids[0].to(torch.int32)
    save_file(golden, os.path.join(out, "golden.safetensors"))
    print(f"wrote {out}/golden.safetensors")


def restore_by_spec(pre: dict, sft: dict, layer_prefix: str, layer: int) -> dict:
    """QK-Restore of one Qwen3.5 softmax layer as SPEC-gdn writes it: the
    query rows of q_proj (per head, the first HEAD_DIM of each 2*HEAD_DIM
    rows) and all of k_proj from pre; everything else from sft."""
    want = dict(sft)
    q = f"{layer_prefix}{layer}.self_attn.q_proj.weight"
    k = f"{layer_prefix}{layer}.self_attn.k_proj.weight"
    merged_q = sft[q].clone()
    rows = merged_q.view(-1, 2 * HEAD_DIM, merged_q.shape[-1])
    rows[:, :HEAD_DIM] = pre[q].view(-1, 2 * HEAD_DIM, merged_q.shape[-1])[:, :HEAD_DIM]
    want[q] = merged_q
    want[k] = pre[k].clone()
    return want


def merge_pair(qklab: str, fixtures: str) -> None:
    import subprocess
    import tempfile
    from safetensors.torch import load_file
    ids = torch.tensor([IDS])
    for name, build in models().items():
        pre_path = os.path.join(fixtures, f"{name}-f32")
        prefix = "model.language_model.layers." if name.endswith("vl") else "model.layers."
        with tempfile.TemporaryDirectory() as tmp:
            pre = build().eval()
            pre.load_state_dict(load_file(os.path.join(pre_path, "model.safetensors")), strict=False)
            torch.manual_seed(100)
            sft = build().eval()
            sft.load_state_dict(pre.state_dict())
            with torch.no_grad():
                for p in sft.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            sft_path, out = os.path.join(tmp, "sft"), os.path.join(tmp, "merged")
            sft.save_pretrained(sft_path, safe_serialization=True)
            subprocess.run([qklab, "merge", "--pre", pre_path, "--sft", sft_path, "--layers", str(SOFTMAX_LAYER),
                            "--out", out], check=True)
            stored_sft = load_file(os.path.join(sft_path, "model.safetensors"))
            stored_pre = load_file(os.path.join(pre_path, "model.safetensors"))
            got = load_file(os.path.join(out, "model.safetensors"))
            want = restore_by_spec(stored_pre, stored_sft, prefix, SOFTMAX_LAYER)
            assert sorted(got) == sorted(want), f"{name}: tensors differ: {set(got) ^ set(want)}"
            changed = [k for k in want if not torch.equal(got[k], want[k])]
            assert not changed, f"{name}: {changed} are not what QK-Restore of layer {SOFTMAX_LAYER} gives"
            merged = build().eval()
            merged.load_state_dict(pre.state_dict())
            # transformers 5 asks for the `kernels` package by default; the check needs the PyTorch paths.
            merged = type(merged).from_pretrained(out, dtype=torch.float32, use_kernels=False).eval()
            expected = build().eval()
            expected.load_state_dict(sft.state_dict())
            expected.load_state_dict({k: v for k, v in want.items()}, strict=False)
            d = (logits(merged, ids) - logits(expected, ids)).abs().max().item()
            moved = (logits(merged, ids) - logits(sft, ids)).abs().max().item()
            assert d == 0.0 and moved > 0.0, f"{name}: logits {d} from the torch merge, {moved} from sft"
            vision = sum(k.startswith("model.visual.") for k in got)
            print(f"{name}: merged by qklab loads in transformers; {len(got)} tensors kept ({vision} vision), "
                  f"logits equal the torch-made merge's (max diff {d}), {moved:.3f} from sft's")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="tests/fixtures/qwen35")
    p.add_argument("--merge-pair", default=None, metavar="QKLAB",
                   help="make an SFT copy of each f32 fixture, merge it with this qklab binary, check the output")
    a = p.parse_args(argv)
    if a.merge_pair:
        merge_pair(a.merge_pair, a.out)
    else:
        make(a.out)


if __name__ == "__main__":
    sys.exit(main())
