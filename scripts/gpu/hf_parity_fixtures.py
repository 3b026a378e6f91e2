#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for rotor's parity tests.

Runs on the GPU machine (it has torch + transformers; this machine has neither). For each architecture
it builds a small random model whose every feature matters (GQA, explicit head_dim, biases, q/k norms,
Llama 3 RoPE scaling, tied and untied outputs), saves it as safetensors + config.json, and records:
  logits_f32.bin   float64 forward of the float32 weights            (reference for F32 GGUFs)
  logits_bf16.bin  same, every matrix rounded to bfloat16 first       (reference for BF16 GGUFs)
  logits_q8_0.bin  same, every matrix quantized+dequantized as Q8_0   (reference for Q8_0 GGUFs)
  logits_q8_0_act.bin  as logits_q8_0, and the input of every Linear also rounded to Q8_0 per row,
                   as ggml-style engines quantize activations before integer dot products
as float32 [n_tokens, n_vocab] row-major, with the input ids in input_ids.json. rotor's CPU tests convert
the safetensors with rotor's own converter/writer and compare (tests/model/test_hf_parity.cpp).

Usage: python3 hf_parity_fixtures.py OUT_DIR     (writes OUT_DIR/hf_parity.tar)
"""
import io
import json
import os
import sys
import tarfile

import numpy as np
import torch
import transformers
from transformers import AutoModelForCausalLM

SEED = 20261128
N_TOKENS = 40


def configs():
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config

    llama = LlamaConfig(vocab_size=512, hidden_size=128, intermediate_size=320, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                        rms_norm_eps=1e-5, tie_word_embeddings=False)
    rope = {"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    if hasattr(llama, "rope_parameters"):
        llama.rope_parameters = rope
    else:
        llama.rope_scaling = rope
        llama.rope_theta = 500000.0
    qwen2 = Qwen2Config(vocab_size=384, hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                        num_attention_heads=6, num_key_value_heads=2, max_position_embeddings=256,
                        rms_norm_eps=1e-6, tie_word_embeddings=True)
    qwen3 = Qwen3Config(vocab_size=512, hidden_size=128, intermediate_size=288, num_hidden_layers=3,
                        num_attention_heads=4, num_key_value_heads=1, head_dim=64, max_position_embeddings=256,
                        rms_norm_eps=1e-6, tie_word_embeddings=False)
    for c in (qwen2, qwen3):
        if hasattr(c, "rope_parameters") and isinstance(c.rope_parameters, dict):
            c.rope_parameters["rope_theta"] = 1000000.0
        else:
            c.rope_theta = 1000000.0
    return {"llama": llama, "qwen2": qwen2, "qwen3": qwen3}


def randomize(model, gen):
    """Weights large enough that attention and every norm matter (the default init is nearly uniform)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1 and "norm" in name:
                p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1]) * 1.5)


def q8_0_roundtrip(w):
    """ggml Q8_0 along each row: d = amax/127 stored as fp16, q = round(x/d) (numpy reference)."""
    x = w.astype(np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.clip(np.trunc(x * inv + np.sign(x) * 0.5), -128, 127)  # roundf: half away from zero
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(w.shape)


def round_linear_inputs_q8_0(model):
    """Round every nn.Linear's input to Q8_0 (blocks of 32 along the feature axis) in a pre-hook."""
    def hook(_module, args):
        x = args[0]
        y = torch.from_numpy(q8_0_roundtrip(x.detach().to(torch.float32).numpy().reshape(-1, x.shape[-1])))
        return (y.reshape(x.shape).to(x.dtype),)
    for m in model.modules():
        if isinstance(m, torch.nn.Linear):
            m.register_forward_pre_hook(hook)


def run(model, ids):
    model = model.to(torch.float64).eval()
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]))
    return out.logits[0].to(torch.float32).numpy()


def main():
    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(SEED)
    tar_path = os.path.join(out_dir, "hf_parity.tar")
    with tarfile.open(tar_path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for arch, cfg in configs().items():
            cfg._attn_implementation = "eager"
            gen = torch.Generator().manual_seed(SEED + len(arch))
            model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
            randomize(model, gen)
            tmp = f"/tmp/hf_{arch}"
            model.save_pretrained(tmp, safe_serialization=True)
            for f in sorted(os.listdir(tmp)):
                if f.endswith(".safetensors") or f == "config.json":
                    add(f"{arch}/{f}", open(os.path.join(tmp, f), "rb").read())
            ids = torch.randint(0, cfg.vocab_size, (N_TOKENS,), generator=gen).tolist()
            add(f"{arch}/input_ids.json", json.dumps(ids).encode())
            state = {k: v.clone() for k, v in model.state_dict().items()}
            add(f"{arch}/logits_f32.bin", run(model, ids).tobytes())
            for kind in ("bf16", "q8_0"):
                m = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.float32)
                sd = {}
                for k, v in state.items():
                    if v.dim() == 2:
                        if kind == "bf16":
                            v = v.to(torch.bfloat16).to(torch.float32)
                        else:
                            v = torch.from_numpy(q8_0_roundtrip(v.numpy()))
                    sd[k] = v
                m.load_state_dict(sd, strict=False)
                if getattr(cfg, "tie_word_embeddings", False):
                    m.tie_weights()
                add(f"{arch}/logits_{kind}.bin", run(m, ids).tobytes())
                if kind == "q8_0":
                    round_linear_inputs_q8_0(m)
                    add(f"{arch}/logits_q8_0_act.bin", run(m, ids).tobytes())
            print(f"{arch}: vocab {cfg.vocab_size}, {N_TOKENS} tokens, params "
                  f"{sum(p.numel() for p in model.parameters())}", flush=True)
        meta = {"torch": torch.__version__, "transformers": transformers.__version__, "seed": SEED,
                "n_tokens": N_TOKENS, "script": "scripts/gpu/hf_parity_fixtures.py"}
        add("meta.json", json.dumps(meta, indent=1).encode())
    print("wrote", tar_path)


if __name__ == "__main__":
    main()
