#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for rotor's Qwen3.5 parity tests (qwen35, qwen35moe).

The sibling of hf_parity_fixtures.py (same helpers, same file set), for transformers' qwen3_5 and
qwen3_5_moe text models. Each config is small but keeps every feature: Gated DeltaNet layers mixed with
gated full-attention layers in a pattern that is not the default interval (so the GGUF needs
attention.recurrent_layers), GQA, partial RoPE, several DeltaNet value heads per key head (2 dense, 3 MoE:
the converter's V-head reorder matters), untied (dense) and tied (MoE) embeddings, routed experts with
a sigmoid-gated shared expert. Every weight is rounded to bfloat16 and the checkpoints are saved in
BF16 (half the bytes), so the F32 reference is also exact for BF16 GGUFs. It records per architecture:
  logits_f32.bin       float64 forward of the weights (transformers runs the delta rule and the gated
                       norm in float32 inside the float64 model)
  logits_q8_0.bin      same, every tensor the converter quantizes rounded to Q8_0 first (in the order the
                       GGUF stores it: out_proj's columns with the value heads tiled)
  logits_q8_0_act.bin  (dense only) as logits_q8_0, and every nn.Linear input rounded to Q8_0 per row;
                       the MoE block's experts are not nn.Linear modules, so no such reference there
as float32 [n_tokens, n_vocab] row-major, input_ids.json and meta.json. Run 72 tokens: more than one of
transformers' 64-token delta-rule chunks.

Usage: python3 hf_parity_fixtures_qwen35.py OUT_DIR   (writes OUT_DIR/hf_parity_qwen35.tar, and
       OUT_DIR/hf_src.tar with the modeling sources used, for checking equations)
"""
import io
import json
import os
import sys
import tarfile
import traceback

import numpy as np
import torch
import transformers

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from hf_parity_fixtures import q8_0_roundtrip  # noqa: E402

SEED = 20261205
N_TOKENS = 72

COMMON = dict(vocab_size=128, hidden_size=64, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
              linear_conv_kernel_dim=4, linear_key_head_dim=16, linear_value_head_dim=16, linear_num_key_heads=2,
              rms_norm_eps=1e-6, max_position_embeddings=256,
              rope_parameters={"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.5,
                               "mrope_section": [2, 1, 1], "mrope_interleaved": True})
DENSE = dict(COMMON, intermediate_size=64, num_hidden_layers=4, linear_num_value_heads=4, tie_word_embeddings=False,
             layer_types=["linear_attention", "full_attention", "linear_attention", "linear_attention"])
MOE = dict(COMMON, num_hidden_layers=3, linear_num_value_heads=6, tie_word_embeddings=True,
           layer_types=["linear_attention", "full_attention", "linear_attention"],
           num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=32)


def make_config(arch):
    if arch == "qwen35":
        from transformers import Qwen3_5TextConfig as Cfg
        kw = DENSE
    else:
        from transformers import Qwen3_5MoeTextConfig as Cfg
        kw = MOE
    cfg = Cfg(**kw, partial_rotary_factor=0.5)
    cfg._attn_implementation = "eager"
    for attr in ("_experts_implementation",):
        try:
            setattr(cfg, attr, "eager")
        except Exception:  # older/newer transformers without it
            pass
    return cfg


def make_model(cfg):
    try:
        from transformers import AutoModelForCausalLM
        return AutoModelForCausalLM.from_config(cfg)
    except Exception:
        from transformers import Qwen3_5ForCausalLM, Qwen3_5MoeForCausalLM
        return (Qwen3_5MoeForCausalLM if "moe" in cfg.model_type else Qwen3_5ForCausalLM)(cfg)


def randomize(model, gen):
    """Weights large enough that every path matters; norms near their identity (HF's zero-centered
    RMSNorm computes x * (1 + w); the gated linear_attn.norm computes x * w)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and name.endswith("linear_attn.norm.weight"):
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1 and "norm" in name:
                p.copy_(0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:  # A_log, dt_bias
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1]) * 1.5)
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def quantized_by_converter(name, t):
    """The tensors rotor's converter (like llama.cpp's) writes with the output type: every matrix except
    conv1d, the router and the shared-expert gate, which stay F32."""
    if t.dim() < 2:
        return False
    return not (name.endswith("conv1d.weight") or name.endswith("mlp.gate.weight") or
                name.endswith("shared_expert_gate.weight"))


def tiled_columns(cfg):
    """GGUF files keep the DeltaNet value heads tiled (head j*H_k + g holds HF's head g*r + j), so
    out_proj's input features, and the Q8_0 blocks of 32 along them, are in that order: position p of
    the GGUF row holds HF column perm[p]. Rounding must follow the stored order to match the file."""
    nk, nv, d = cfg.linear_num_key_heads, cfg.linear_num_value_heads, cfg.linear_value_head_dim
    r = nv // nk
    return np.array([(g * r + j) * d + i for j in range(r) for g in range(nk) for i in range(d)])


def q8_0_in_order(w, perm):
    """Q8_0 round trip of the rows of w taken in the column order perm (identity when perm is None)."""
    if perm is None:
        return q8_0_roundtrip(w)
    out = np.empty_like(w)
    out[..., perm] = q8_0_roundtrip(np.ascontiguousarray(w[..., perm]))
    return out


def round_linear_inputs_q8_0(model, perm):
    """Round every nn.Linear's input to Q8_0 (blocks of 32 along the features, in the order the GGUF
    stores them) in a pre-hook, as rotor and llama.cpp quantize activations before integer dot products."""
    def make_hook(order):
        def hook(_module, args):
            x = args[0]
            y = q8_0_in_order(x.detach().to(torch.float32).numpy().reshape(-1, x.shape[-1]), order)
            return (torch.from_numpy(y).reshape(x.shape).to(x.dtype),)
        return hook
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_pre_hook(make_hook(perm if name.endswith("linear_attn.out_proj") else None))


def run(model, ids):
    try:
        m = model.to(torch.float64).eval()
        with torch.no_grad():
            out = m(input_ids=torch.tensor([ids]), use_cache=False)
        return out.logits[0].to(torch.float32).numpy(), "float64"
    except Exception:
        traceback.print_exc()
        m = model.to(torch.float32).eval()
        with torch.no_grad():
            out = m(input_ids=torch.tensor([ids]), use_cache=False)
        return out.logits[0].to(torch.float32).numpy(), "float32"


def add_sources(out_dir):
    """The modeling/config sources this transformers uses, to check equations against if parity fails."""
    base = os.path.dirname(transformers.__file__)
    with tarfile.open(os.path.join(out_dir, "hf_src.tar"), "w") as tar:
        for rel in ("models/qwen3_5/modeling_qwen3_5.py", "models/qwen3_5/configuration_qwen3_5.py",
                    "models/qwen3_5_moe/modeling_qwen3_5_moe.py", "models/qwen3_5_moe/configuration_qwen3_5_moe.py",
                    "models/qwen3_next/modeling_qwen3_next.py"):
            path = os.path.join(base, rel)
            if os.path.exists(path):
                tar.add(path, arcname=rel)


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    print("transformers", transformers.__version__, transformers.__file__, "torch", torch.__version__, flush=True)
    try:
        add_sources(out_dir)
    except Exception:
        traceback.print_exc()
    torch.manual_seed(SEED)
    tar_path = os.path.join(out_dir, "hf_parity_qwen35.tar")
    with tarfile.open(tar_path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for arch in ("qwen35", "qwen35moe"):
            try:
                cfg = make_config(arch)
                print(arch, "rope_parameters", getattr(cfg, "rope_parameters", None), "layer_types", cfg.layer_types,
                      flush=True)
                gen = torch.Generator().manual_seed(SEED + len(arch))
                model = make_model(cfg).to(torch.float32)
                randomize(model, gen)
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                try:
                    print(arch, type(model).__name__, "rotary inv_freq", tuple(model.model.rotary_emb.inv_freq.shape),
                          flush=True)
                except Exception:
                    print(arch, type(model).__name__, flush=True)
                for k, v in state.items():
                    print("   ", k, tuple(v.shape), flush=True)
                tmp = f"/tmp/hf_{arch}"
                model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
                for f in sorted(os.listdir(tmp)):
                    if f.endswith(".safetensors") or f == "config.json":
                        add(f"{arch}/{f}", open(os.path.join(tmp, f), "rb").read())
                    if f.endswith(".safetensors"):
                        raw = open(os.path.join(tmp, f), "rb").read()
                        n = int.from_bytes(raw[:8], "little")
                        header = json.loads(raw[8:8 + n])
                        print("    saved:", sorted((k, tuple(v["shape"]), v["dtype"]) for k, v in header.items()
                                                   if k != "__metadata__"), flush=True)
                ids = torch.randint(0, cfg.vocab_size, (N_TOKENS,), generator=gen).tolist()
                add(f"{arch}/input_ids.json", json.dumps(ids).encode())
                ref = make_model(cfg).to(torch.float32)
                ref.load_state_dict(state, strict=False)
                if getattr(cfg, "tie_word_embeddings", False):
                    ref.tie_weights()
                logits, precision = run(ref, ids)
                add(f"{arch}/logits_f32.bin", logits.tobytes())
                perm = tiled_columns(cfg)
                sd = {k: (torch.from_numpy(q8_0_in_order(v.numpy(), perm if k.endswith("linear_attn.out_proj.weight")
                                                         else None)) if quantized_by_converter(k, v) else v)
                      for k, v in state.items()}
                q = make_model(cfg).to(torch.float32)
                q.load_state_dict(sd, strict=False)
                if getattr(cfg, "tie_word_embeddings", False):
                    q.tie_weights()
                add(f"{arch}/logits_q8_0.bin", run(q, ids)[0].tobytes())
                if arch == "qwen35":
                    round_linear_inputs_q8_0(q, perm)
                    add(f"{arch}/logits_q8_0_act.bin", run(q, ids)[0].tobytes())
                meta = {"torch": torch.__version__, "transformers": transformers.__version__, "seed": SEED,
                        "n_tokens": N_TOKENS, "reference_precision": precision,
                        "script": "scripts/gpu/hf_parity_fixtures_qwen35.py"}
                add(f"{arch}/meta.json", json.dumps(meta, indent=1).encode())
                print(f"{arch}: vocab {cfg.vocab_size}, {N_TOKENS} tokens, params "
                      f"{sum(p.numel() for p in model.parameters())}, reference in {precision}, "
                      f"max |logit| {float(np.abs(logits).max()):.3f}", flush=True)
            except Exception:
                traceback.print_exc()
                print(f"{arch}: FAILED", flush=True)
    print("wrote", tar_path)


if __name__ == "__main__":
    main()
