"""Golden fixtures for pure softmax-attention families (issue 19), made by
Hugging Face transformers itself: tiny random Qwen2, Qwen3, Llama (with
Llama 3.1's `llama3` RoPE scaling) and Mistral models, each saved with
`save_pretrained` in f32 and in bf16, and their logits on fixed ids.

Run by hand (CPU is enough) when the families or transformers change:

    python3 reference/hf_fixtures.py tests/fixtures/hf

writes DIR/<family>-<dtype>/{config.json,model.safetensors} and
DIR/golden.safetensors with, per checkpoint, `ids` and `logits_<name>`
([T, V], f32). The bf16 checkpoints' logits are computed from their bf16
weights upcast to f32, as qklab's engines compute. `--check-merged DIR`
loads a merged checkpoint back with transformers and prints its logits'
difference from the pre-SFT checkpoint it came from.

`--merge-pair QKLAB` is the whole merge check, per family: it makes an
"SFT" copy of the f32 fixture with every tensor perturbed (a script-made
pair), runs `QKLAB merge --layers 1` (QK-Restore of layer 1) on the pair,
loads the output with transformers and checks that it keeps every tensor,
that layer 1's q/k weights (and biases) are pre's and everything else the
SFT copy's, bit for bit, and that its logits are those of the same
replacement made in torch:

    python3 reference/hf_fixtures.py --merge-pair target/release/qklab
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import torch
from safetensors.torch import save_file

VOCAB = 259
IDS = [(i * 37 + 11) % VOCAB for i in range(48)]

COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
              num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
              rms_norm_eps=1e-6, bos_token_id=256, eos_token_id=257)


def families():
    import transformers as tf
    return {
        # q/k/v biases, tied embeddings
        "qwen2": (tf.Qwen2Config, tf.Qwen2ForCausalLM, dict(rope_theta=1e6, tie_word_embeddings=True)),
        # q_norm / k_norm, a head size other than hidden / heads
        "qwen3": (tf.Qwen3Config, tf.Qwen3ForCausalLM, dict(head_dim=16, rope_theta=1e6, tie_word_embeddings=False)),
        # Llama 3.1's rope scaling, with thresholds that fall inside the head's frequencies
        "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, dict(
            rope_theta=10000.0, tie_word_embeddings=False,
            rope_scaling=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                              original_max_position_embeddings=64))),
        "mistral": (tf.MistralConfig, tf.MistralForCausalLM, dict(rope_theta=1e6, sliding_window=None,
                                                                  tie_word_embeddings=False)),
    }


def make(out: str) -> None:
    os.makedirs(out, exist_ok=True)
    golden = {}
    ids = torch.tensor([IDS])
    for seed, (name, (Config, Model, extra)) in enumerate(families().items()):
        torch.manual_seed(seed)
        cfg = Config(**COMMON, **extra)
        model = Model(cfg).eval()
        # Random norms and biases too, so that a dropped one shows.
        with torch.no_grad():
            for pname, p in model.named_parameters():
                if p.dim() == 1:
                    p.copy_(1.0 + 0.2 * torch.randn_like(p) if "norm" in pname else 0.2 * torch.randn_like(p))
        for dtype in (torch.float32, torch.bfloat16):
            tag = f"{name}-{'f32' if dtype == torch.float32 else 'bf16'}"
            path = os.path.join(out, tag)
            m = Model(cfg).eval()
            m.load_state_dict(model.state_dict())
            m.to(dtype).save_pretrained(path, safe_serialization=True)
            # The logits of the stored weights, computed in f32 by a fresh f32
            # model: `.to(bf16)` would also round RoPE's inv_freq buffer.
            ref = Model(cfg).eval()
            ref.load_state_dict({k: v.to(dtype).to(torch.float32) for k, v in model.state_dict().items()})
            with torch.no_grad():
                logits = ref(ids).logits[0]
            golden[f"logits_{tag.replace('-', '_')}"] = logits.contiguous()
            print(f"{tag}: {sum(p.numel() for p in m.parameters())} parameters, logits {list(logits.shape)}")
    golden["ids"] = ids[0].to(torch.int32)
    save_file(golden, os.path.join(out, "golden.safetensors"))
    print(f"wrote {out}/golden.safetensors")


def check_merged(path: str, pre: str) -> None:
    from transformers import AutoModelForCausalLM
    ids = torch.tensor([IDS])
    merged = AutoModelForCausalLM.from_pretrained(path, torch_dtype=torch.float32).eval()
    base = AutoModelForCausalLM.from_pretrained(pre, torch_dtype=torch.float32).eval()
    with torch.no_grad():
        d = (merged(ids).logits - base(ids).logits).abs().max().item()
    print(f"{path}: loads in transformers; max |logits - {pre}'s| = {d:.3e}")


def merge_pair(qklab: str, fixtures: str) -> None:
    import subprocess
    import tempfile
    from transformers import AutoModelForCausalLM
    ids = torch.tensor([IDS])
    restored = ("model.layers.1.self_attn.q_proj.", "model.layers.1.self_attn.k_proj.")
    for name in families():
        pre_path = os.path.join(fixtures, f"{name}-f32")
        with tempfile.TemporaryDirectory() as tmp:
            pre = AutoModelForCausalLM.from_pretrained(pre_path, dtype=torch.float32).eval()
            torch.manual_seed(100)
            sft = AutoModelForCausalLM.from_pretrained(pre_path, dtype=torch.float32).eval()
            with torch.no_grad():
                for p in sft.parameters():
                    p.add_(0.05 * torch.randn_like(p))
            sft_path, out = os.path.join(tmp, "sft"), os.path.join(tmp, "merged")
            sft.save_pretrained(sft_path, safe_serialization=True)
            subprocess.run([qklab, "merge", "--pre", pre_path, "--sft", sft_path, "--layers", "1", "--out", out], check=True)
            merged = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
            want = {k: (pre.state_dict()[k] if k.startswith(restored) else v) for k, v in sft.state_dict().items()}
            got = merged.state_dict()
            assert sorted(got) == sorted(want), f"{name}: tensors differ: {set(got) ^ set(want)}"
            changed = [k for k in want if not torch.equal(got[k], want[k])]
            assert not changed, f"{name}: {changed} are not what QK-Restore of layer 1 gives"
            n_pre = sum(k.startswith(restored) for k in want)
            expected = AutoModelForCausalLM.from_pretrained(sft_path, dtype=torch.float32).eval()
            expected.load_state_dict(want)
            with torch.no_grad():
                d = (merged(ids).logits - expected(ids).logits).abs().max().item()
                moved = (merged(ids).logits - sft(ids).logits).abs().max().item()
            assert d == 0.0 and moved > 0.0, f"{name}: logits {d} from the torch merge, {moved} from sft"
            print(f"{name}: merged by qklab loads in transformers; {len(want)} tensors kept, {n_pre} from pre; "
                  f"logits equal the torch-made merge's (max diff {d}), {moved:.3f} from sft's")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="tests/fixtures/hf")
    p.add_argument("--check-merged", default=None, help="a merged checkpoint to load with transformers")
    p.add_argument("--pre", default=None, help="with --check-merged: the pre-SFT checkpoint it came from")
    p.add_argument("--merge-pair", default=None, metavar="QKLAB", help="make an SFT copy of each f32 fixture, merge it with this qklab binary, check the output")
    a = p.parse_args(argv)
    if a.merge_pair:
        merge_pair(a.merge_pair, a.out)
    elif a.check_merged:
        check_merged(a.check_merged, a.pre or a.check_merged)
    else:
        make(a.out)


if __name__ == "__main__":
    sys.exit(main())
