"""Golden fixtures for Jet-Nemotron (issue 27), made by NVlabs' own modeling
code (NVlabs/Jet-Nemotron at 94cbd12404637950722a09f70c8649ff1b1f2793,
`jetai/modeling/hf/`), run on the CPU as SPEC-gdn's "Running the NVlabs code
on a CPU" says: transformers 4.57 (the NVlabs code imports what 5 removed),
fla-core 0.6 for its ops only, attention through `sdpa`, the dynamic
convolution's `naive` path, and in jet_block's namespace the chunked and
fused-recurrent gated delta rule replaced by fla's naive recurrence (q and k
L2-normed first, as `use_qk_l2norm_in_kernel` asks) and FusedRMSNormGated by
a plain gated RMSNorm (normalize, times weight, times silu(gate)).

A tiny random model: 6 layers `jet jet attn jet swa jet` (2 JetBlock heads
of 8, expand_v 2, a window of 16 tokens), q/k/v biases, tied embeddings, in
f32 and bf16; logits on 150 ids (more than the 64 under which the NVlabs
code takes its recurrent branch). Run by hand with a Python that has
torch 2.11, transformers 4.57.1, einops and fla-core 0.6:

    python3 reference/jet_fixtures.py --nvlabs JET_NEMOTRON_CHECKOUT tests/fixtures/jet

writes DIR/jet-<dtype>/{config.json,model.safetensors} and
DIR/golden.safetensors (`ids`, `logits_jet_<dtype>` [150, V], f32, the bf16
checkpoint's logits from its weights upcast to f32).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import types

import torch
from safetensors.torch import save_file

import fla_bare

VOCAB = 259
IDS = [(i * 37 + 11) % VOCAB for i in range(150)]
NVLABS_COMMIT = "94cbd12404637950722a09f70c8649ff1b1f2793"
CONFIG = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=6,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
    rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=True,
    bos_token_id=256, eos_token_id=257,
    layer_types=["jet", "jet", "attn", "jet", "swa", "jet"],
    efficient_attention_config={
        "jet": {"mode": "chunk", "expand_v": 2.0, "num_heads": 2, "head_dim": 8, "norm_eps": 1e-5,
                "conv_size": 4, "dconv_generator_reduction": 4, "dconv_implementation": "naive"},
        "swa": {"window_size": 16},
    },
)


def load_nvlabs(checkout: str):
    """The NVlabs package from a checkout, with fla's ops imported under a
    bare `fla` (its __init__ would load a model zoo that needs
    transformers 5) and its GPU-only pieces replaced by plain PyTorch."""
    fla_bare.install()
    src = os.path.join(checkout, "jetai", "modeling", "hf")
    pkg = types.ModuleType("jet_hf")
    pkg.__path__ = [src]
    sys.modules["jet_hf"] = pkg
    import jet_hf.jet_block as jet_block
    import jet_hf.modeling_jet_nemotron as modeling
    import jet_hf.configuration_jet_nemotron as configuration
    from fla.ops.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

    def l2norm(x):
        return x * torch.rsqrt((x.float() * x.float()).sum(-1, keepdim=True) + 1e-6).to(x.dtype)

    def recurrence(q, k, v, g, beta, initial_state=None, output_final_state=False, cu_seqlens=None,
                   use_qk_l2norm_in_kernel=False, **_):
        # The NVlabs code packs even an unpadded batch: one sequence is all
        # this oracle runs, so its cu_seqlens can only be [0, T].
        assert cu_seqlens is None or (len(cu_seqlens) == 2 and q.shape[0] == 1), "one sequence at a time"
        if use_qk_l2norm_in_kernel:
            q, k = l2norm(q), l2norm(k)
        o, state = naive_recurrent_gated_delta_rule(q, k, v, beta, g, scale=q.shape[-1] ** -0.5,
                                                    initial_state=initial_state,
                                                    output_final_state=output_final_state)
        return o.to(v.dtype), state

    class GatedRMSNorm(torch.nn.Module):
        def __init__(self, hidden_size, eps=1e-5, **_):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.ones(hidden_size))
            self.eps = eps

        def forward(self, x, g):
            xf = x.float()
            y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight.float()
            return (y * torch.nn.functional.silu(g.float())).to(x.dtype)

    jet_block.chunk_gated_delta_rule = recurrence
    jet_block.fused_recurrent_gated_delta_rule = recurrence
    jet_block.FusedRMSNormGated = GatedRMSNorm
    return modeling, configuration


def build(modeling, configuration):
    cfg = configuration.JetNemotronConfig(**CONFIG)
    cfg._attn_implementation = "sdpa"
    return modeling.JetNemotronForCausalLM(cfg).eval(), cfg


def randomize(model) -> None:
    """Random norms, biases and decays, so that a dropped one shows."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() != 1:
                continue
            if name.endswith("A_log"):
                p.copy_(torch.log(torch.empty_like(p).uniform_(0.5, 4.0)))
            elif "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.2 * torch.randn_like(p))


def make(out: str, checkout: str) -> None:
    modeling, configuration = load_nvlabs(checkout)
    os.makedirs(out, exist_ok=True)
    ids = torch.tensor([IDS])
    torch.manual_seed(0)
    model, cfg = build(modeling, configuration)
    randomize(model)
    state = model.state_dict()
    golden = {}
    for dtype in (torch.float32, torch.bfloat16):
        tag = f"jet-{'f32' if dtype == torch.float32 else 'bf16'}"
        path = os.path.join(out, tag)
        if os.path.isdir(path):
            shutil.rmtree(path)
        os.makedirs(path)
        tensors = {k: v.to(dtype).contiguous() for k, v in state.items() if k != "lm_head.weight"}
        save_file(tensors, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
        config = json.loads(cfg.to_json_string())
        config["torch_dtype"] = "float32" if dtype == torch.float32 else "bfloat16"
        config.pop("_attn_implementation_autoset", None)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        ref, _ = build(modeling, configuration)
        ref.load_state_dict({k: v.to(dtype).to(torch.float32) for k, v in state.items()})
        # With a mask, as generate() passes one. Without it the NVlabs code
        # builds a causal mask one key too wide ([T, T + 1]), and two of its
        # layers misread that: the `swa` layer takes the mask's last T
        # columns, so each query loses itself and the first attends to every
        # key (a fully masked row, unmasked); the JetBlock reads the mask's
        # last row as a padding mask, so the last token counts as padding
        # (its v zeroed, its output dropped).
        with torch.no_grad():
            lg = ref(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[0]
        golden[f"logits_{tag.replace('-', '_')}"] = lg.float().contiguous()
        print(f"{tag}: {sum(t.numel() for t in tensors.values())} parameters, logits {list(lg.shape)}")
    golden["ids"] = ids[0].to(torch.int32)
    save_file(golden, os.path.join(out, "golden.safetensors"))
    print(f"wrote {out}/golden.safetensors (NVlabs/Jet-Nemotron {NVLABS_COMMIT[:7]})")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", nargs="?", default="tests/fixtures/jet")
    p.add_argument("--nvlabs", required=True, help=f"a checkout of NVlabs/Jet-Nemotron at {NVLABS_COMMIT[:7]}")
    a = p.parse_args(argv)
    make(a.out, a.nvlabs)


if __name__ == "__main__":
    sys.exit(main())
