#!/usr/bin/env python3
"""Reference logits from Hugging Face transformers for rotor's Gemma 4 parity tests (gemma4).

The sibling of hf_parity_fixtures_qwen35.py, for transformers' gemma4 text model (Gemma4ForCausalLM on a
Gemma4TextConfig). Two small random configs keep every feature of the 26B-A4B layout:
  gemma4        sliding and full layers in a pattern that is not periodic (so the GGUF needs the per-layer
                attention.sliding_window_pattern), window 8 (the 72 test tokens cross it many times),
                head size 16 on sliding layers and 32 on full ones, 2 KV heads on sliding layers and 1 on
                full ones, K = V on full layers (no v_proj: V is the raw key projection with the weightless
                RMS norm, no RoPE), proportional partial RoPE on full layers (4 of 16 frequency pairs),
                separate RoPE bases, q/k norms, the dense GELU MLP plus routed experts (softmax router with
                its own norm and scale, top-2 of 5, renormalized, per-expert scale, fused gate_up), the four
                post-norms, a per-layer output scale, embedding scaling, final logit soft-capping (6.0, so
                that tanh bends the logits), tied embeddings.
  gemma4_dense  the same without experts and without K = V (full layers have their own v_proj), no
                soft-capping: the 31B-style dense path and the absent-key cases.
Every weight is rounded to bfloat16 and the checkpoints are saved in BF16, so the F32 reference is also exact
for BF16 GGUFs. It records per config:
  logits_f32.bin       float64 forward of the (bfloat16-exact) weights: the reference for F32 and BF16 GGUFs
  logits_q8_0.bin      same, every tensor the converter quantizes (every matrix except router.proj) rounded
                       to Q8_0 along its rows first
  logits_q8_0_act.bin  as logits_q8_0, and every matrix input rounded to Q8_0 per row (every nn.Linear but
                       the F32 router, and inside the experts both the gate_up and the down inputs), as rotor
                       and llama.cpp quantize activations before integer dot products
  hidden_f32.bin       (debugging only) the output of the embedding and of every decoder layer, float32
                       [n_layers + 1, n_tokens, hidden]
as float32 row-major, input_ids.json, meta.json (versions, the rotary inverse frequencies transformers built
per layer type, the config as transformers resolved it). Run 72 tokens.

Usage: python3 hf_parity_fixtures_gemma4.py OUT_DIR   (writes OUT_DIR/hf_parity_gemma4.tar, and
       OUT_DIR/hf_src_gemma4.tar with the modeling sources used, for checking equations)
Then, in the checkout (about 600 KB; the debugging hidden states stay out):
       tar xf hf_parity_gemma4.tar -C tests/fixtures/hf_parity --exclude='*/hidden_f32.bin'
and tests/model/test_hf_parity.cpp's gemma4 / gemma4_dense cases run instead of skipping.
"""
import io
import json
import os
import sys
import tarfile
import traceback

import numpy as np

SEED = 20261214
N_TOKENS = 72
ROUTER_GAIN = 8.0

ROPE = {"sliding_attention": {"rope_type": "default", "rope_theta": 5000.0},
        "full_attention": {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 200000.0}}
COMMON = dict(vocab_size=128, hidden_size=32, intermediate_size=32, num_hidden_layers=5, num_attention_heads=4,
              num_key_value_heads=2, head_dim=16, global_head_dim=32, hidden_activation="gelu_pytorch_tanh",
              max_position_embeddings=256, rms_norm_eps=1e-6, tie_word_embeddings=True, sliding_window=8,
              layer_types=["sliding_attention", "full_attention", "sliding_attention", "sliding_attention",
                           "full_attention"],
              hidden_size_per_layer_input=0, vocab_size_per_layer_input=128, num_kv_shared_layers=0,
              use_double_wide_mlp=False, attention_bias=False, pad_token_id=0, bos_token_id=2, eos_token_id=1)
CONFIGS = {
    "gemma4": dict(COMMON, num_global_key_value_heads=1, attention_k_eq_v=True, enable_moe_block=True,
                   num_experts=5, top_k_experts=2, moe_intermediate_size=32, final_logit_softcapping=6.0),
    "gemma4_dense": dict(COMMON, num_hidden_layers=4,
                         layer_types=["sliding_attention", "sliding_attention", "full_attention", "full_attention"],
                         attention_k_eq_v=False, enable_moe_block=False, final_logit_softcapping=None),
}


def q8_0_roundtrip(w):
    """ggml Q8_0 along each row: d = amax/127 stored as fp16, q = round(x/d) half away from zero."""
    x = np.asarray(w, dtype=np.float32).reshape(-1, 32)
    amax = np.abs(x).max(axis=1, keepdims=True)
    d = amax / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1), 0).astype(np.float32)
    q = np.clip(np.trunc(x * inv + np.sign(x) * 0.5), -128, 127)
    d16 = d.astype(np.float16).astype(np.float32)
    return (q * d16).reshape(np.shape(w))


def quantized_by_converter(name, shape):
    """The tensors rotor's converter (like llama.cpp's) writes with the output type: every matrix (and the
    3-D expert stacks) except the router's projection, which stays F32."""
    return len(shape) >= 2 and not name.endswith("router.proj.weight")


def main():
    import torch
    import transformers

    def make_config(name):
        from transformers import Gemma4TextConfig
        kw = dict(CONFIGS[name])
        kw["rope_parameters"] = json.loads(json.dumps(ROPE))
        cfg = Gemma4TextConfig(**kw)
        cfg._attn_implementation = "eager"
        try:
            cfg._experts_implementation = "eager"
        except Exception:
            pass
        return cfg

    def make_model(cfg):
        from transformers import Gemma4ForCausalLM
        model = Gemma4ForCausalLM(cfg)
        for attr in ("_attn_implementation", "_experts_implementation"):  # the plain PyTorch paths
            try:
                setattr(model.config, attr, "eager")
            except Exception:
                traceback.print_exc()
        return model

    def randomize(model, gen):
        """Weights large enough that every path matters. Gemma 4's RMSNorm multiplies by w (no 1 + w), so the
        norm weights sit near 1; the router scales and per-expert scales too; the layer output scales
        (buffers) between 0.5 and 1.5. Attention has no 1/sqrt(D): the q/k norm weights sit near D^-1/4 so that
        scores of unit-RMS heads have unit variance (with weights near 1 every attention would be nearly
        one-hot and every rounding would move it). The router reads rms_norm(x) / sqrt(E): its projection gets ROUTER_GAIN
        more so that the expert scores spread (std ~2) and float rounding does not flip expert choices."""
        with torch.no_grad():
            for name, p in model.named_parameters():
                if p.dim() == 1 and (name.endswith("q_norm.weight") or name.endswith("k_norm.weight")):
                    # attention runs with scale 1: q/k norms of D^-1/4 keep the scores near unit variance
                    p.copy_((1.0 + 0.25 * torch.randn(p.shape, generator=gen)) * p.shape[0] ** -0.25)
                elif p.dim() == 1:
                    p.copy_(1.0 + 0.25 * torch.randn(p.shape, generator=gen))
                else:
                    p.copy_(torch.randn(p.shape, generator=gen) / np.sqrt(p.shape[-1]) * 1.5)
                if name.endswith("router.proj.weight"):
                    p.mul_(ROUTER_GAIN)
                p.copy_(p.to(torch.bfloat16).to(torch.float32))
            for name, b in model.named_buffers():
                if name.endswith("layer_scalar"):
                    b.copy_((0.5 + torch.rand(b.shape, generator=gen)).to(torch.bfloat16).to(torch.float32))

    def q8(t):
        """Q8_0 round trip of a torch tensor along its last axis (any float dtype)."""
        y = q8_0_roundtrip(t.detach().to(torch.float32).cpu().numpy().reshape(-1, t.shape[-1]))
        return torch.from_numpy(y).reshape(t.shape).to(t.dtype)

    def round_inputs_q8_0(model):
        """Round every matrix input to Q8_0 per row, as rotor quantizes activations for Q8_0 weights: every
        nn.Linear but the router's F32 projection (pre-hooks), and inside the routed experts both matmul inputs
        (the experts' forward replaced by an equivalent loop that rounds them)."""
        def hook(_module, args):
            return (q8(args[0]),) + tuple(args[1:])
        n_hooked = 0
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.Linear) and not name.endswith("router.proj"):
                m.register_forward_pre_hook(hook)
                n_hooked += 1
            if type(m).__name__ == "Gemma4TextExperts":
                def fwd(hidden_states, top_k_index, top_k_weights, _m=m):
                    out = torch.zeros_like(hidden_states)
                    x = q8(hidden_states)
                    for t in range(hidden_states.shape[0]):
                        for j in range(top_k_index.shape[1]):
                            e = int(top_k_index[t, j])
                            gate, up = torch.nn.functional.linear(x[t], _m.gate_up_proj[e]).chunk(2, dim=-1)
                            h = q8(_m.act_fn(gate) * up)
                            out[t] += torch.nn.functional.linear(h, _m.down_proj[e]) * top_k_weights[t, j]
                    return out
                m.forward = fwd
        print("    q8_0 activation hooks on", n_hooked, "linear layers", flush=True)

    def run(model, ids, hidden=False):
        m = model.to(torch.float64).eval()
        with torch.no_grad():
            out = m(input_ids=torch.tensor([ids]), use_cache=False, output_hidden_states=hidden)
        hs = None
        if hidden and getattr(out, "hidden_states", None) is not None:
            hs = np.stack([h[0].to(torch.float32).numpy() for h in out.hidden_states])
        return out.logits[0].to(torch.float32).numpy(), hs

    out_dir = sys.argv[1]
    os.makedirs(out_dir, exist_ok=True)
    print("transformers", transformers.__version__, transformers.__file__, "torch", torch.__version__, flush=True)
    try:
        base = os.path.dirname(transformers.__file__)
        with tarfile.open(os.path.join(out_dir, "hf_src_gemma4.tar"), "w") as tar:
            for rel in ("models/gemma4/modeling_gemma4.py", "models/gemma4/configuration_gemma4.py",
                        "models/gemma4/modular_gemma4.py", "modeling_rope_utils.py", "masking_utils.py",
                        "integrations/moe.py", "integrations/sdpa_attention.py", "configuration_utils.py",
                        "activations.py"):
                path = os.path.join(base, rel)
                if os.path.exists(path):
                    tar.add(path, arcname=rel)
    except Exception:
        traceback.print_exc()
    torch.manual_seed(SEED)
    tar_path = os.path.join(out_dir, "hf_parity_gemma4.tar")
    with tarfile.open(tar_path, "w") as tar:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for name in CONFIGS:
            try:
                cfg = make_config(name)
                print(name, "layer_types", cfg.layer_types, "rope", cfg.rope_parameters, flush=True)
                # transformers 5.17 keeps head_dim / num_key_value_heads per layer (per_layer_config) and
                # raises on global access to them, hence the guarded reads (debugging output only)
                for attr in ("sliding_window", "attention_k_eq_v", "final_logit_softcapping", "top_k_experts",
                             "per_layer_config"):
                    try:
                        print("   ", attr, "=", getattr(cfg, attr, "(absent)"), flush=True)
                    except Exception as e:
                        print("   ", attr, ": not readable globally:", type(e).__name__, flush=True)
                gen = torch.Generator().manual_seed(SEED + len(name))
                model = make_model(cfg).to(torch.float32)
                randomize(model, gen)
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                for k, v in state.items():
                    print("   ", k, tuple(v.shape), flush=True)
                inv = {}
                try:
                    rot = model.model.rotary_emb
                    inv = {lt: getattr(rot, f"{lt}_inv_freq").tolist() for lt in ("sliding_attention", "full_attention")
                           if hasattr(rot, f"{lt}_inv_freq")}
                except Exception:
                    traceback.print_exc()
                print("    inv_freq", inv, flush=True)
                tmp = f"/tmp/hf_{name}"
                model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
                for f in sorted(os.listdir(tmp)):
                    if f.endswith(".safetensors") or f == "config.json":
                        add(f"{name}/{f}", open(os.path.join(tmp, f), "rb").read())
                    if f.endswith(".safetensors"):
                        raw = open(os.path.join(tmp, f), "rb").read()
                        n = int.from_bytes(raw[:8], "little")
                        header = json.loads(raw[8:8 + n])
                        print("    saved:", sorted((k, tuple(v["shape"]), v["dtype"]) for k, v in header.items()
                                                   if k != "__metadata__"), flush=True)
                ids = torch.randint(0, cfg.vocab_size, (N_TOKENS,), generator=gen).tolist()
                add(f"{name}/input_ids.json", json.dumps(ids).encode())

                ref = make_model(cfg).to(torch.float32)
                ref.load_state_dict(state, strict=False)
                ref.tie_weights()
                logits, hs = run(ref, ids, hidden=True)
                add(f"{name}/logits_f32.bin", logits.tobytes())
                if hs is not None:
                    add(f"{name}/hidden_f32.bin", hs.tobytes())
                    print("    hidden states", hs.shape, flush=True)

                sd = {k: (torch.from_numpy(q8_0_roundtrip(v.numpy())) if quantized_by_converter(k, tuple(v.shape))
                          else v) for k, v in state.items()}
                q = make_model(cfg).to(torch.float32)
                q.load_state_dict(sd, strict=False)
                q.tie_weights()
                add(f"{name}/logits_q8_0.bin", run(q, ids)[0].tobytes())
                try:
                    round_inputs_q8_0(q)
                    add(f"{name}/logits_q8_0_act.bin", run(q, ids)[0].tobytes())
                except Exception:
                    traceback.print_exc()
                    print(f"{name}: no q8_0_act reference", flush=True)
                meta = {"torch": torch.__version__, "transformers": transformers.__version__, "seed": SEED,
                        "n_tokens": N_TOKENS, "reference_precision": "float64", "inv_freq": inv,
                        "script": "scripts/gpu/hf_parity_fixtures_gemma4.py"}
                try:
                    meta["config"] = json.loads(cfg.to_json_string())
                except Exception:
                    traceback.print_exc()
                add(f"{name}/meta.json", json.dumps(meta, indent=1).encode())
                print(f"{name}: vocab {cfg.vocab_size}, {N_TOKENS} tokens, params "
                      f"{sum(p.numel() for p in model.parameters())}, max |logit| {float(np.abs(logits).max()):.3f}, "
                      f"logit std {float(logits.std()):.3f}", flush=True)
            except Exception:
                traceback.print_exc()
                print(f"{name}: FAILED", flush=True)
    print("wrote", tar_path)


if __name__ == "__main__":
    main()
