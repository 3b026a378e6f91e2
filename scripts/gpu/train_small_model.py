#!/usr/bin/env python3
"""Trains rotor's small model on the GPU machine: a Llama-architecture decoder with head size 128, GQA,
RoPE, RMSNorm and SwiGLU, on the KJV corpus tokenized by scripts/model/train_bpe.py.

Resumable: state (weights, optimizer, step, RNG, log) is saved to --state every --save-every steps and
at the end; a later call with the same --state continues. --minutes bounds one call's training time.
At the end (or with --finish) it writes to --out:
  model/            config.json + bf16 safetensors shards (<= 12 MB each) + tokenizer.json
  training_log.txt  step, train loss, val loss, tokens seen, seconds
  eval.json         validation perplexity computed in PyTorch with llama.cpp's protocol (see below),
                    on the bf16 weights in float32 arithmetic, for n_ctx 512 and 2048
  greedy.json       greedy continuations of a few prompts (token ids), 48 new tokens each

llama.cpp's perplexity protocol: split the token stream into chunks of n_ctx, replace each chunk's first
token by BOS, evaluate the chunk, score only the predictions of tokens n_ctx/2+1 .. n_ctx-1.

Usage: train_small_model.py --data DIR --state DIR --out DIR [--minutes M] [--steps N] [--finish]
"""
import argparse
import json
import math
import os
import shutil
import time

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM

CONFIG = dict(vocab_size=4096, hidden_size=384, intermediate_size=1024, num_hidden_layers=6, num_attention_heads=3,
              num_key_value_heads=1, head_dim=128, max_position_embeddings=2048, rms_norm_eps=1e-5,
              tie_word_embeddings=True, bos_token_id=4093, eos_token_id=4093, attention_dropout=0.0)
ROPE_THETA = 10000.0
SEQ = 2048
BATCH = 16
LR, LR_MIN, WARMUP = 1.5e-3, 1e-4, 50
DROPOUT = 0.1  # on each block's output: the corpus is small (1M tokens) and a 10M model memorizes it
PROMPTS = ["In the beginning", "And the LORD spake unto Moses, saying,", "Blessed are the", "The king said unto"]


def make_config():
    cfg = LlamaConfig(**CONFIG)
    if hasattr(cfg, "rope_parameters") and isinstance(cfg.rope_parameters, dict):
        cfg.rope_parameters["rope_theta"] = ROPE_THETA
    else:
        cfg.rope_theta = ROPE_THETA
    return cfg


def lr_at(step, total):
    if step < WARMUP:
        return LR * (step + 1) / WARMUP
    p = min(1.0, (step - WARMUP) / max(1, total - WARMUP))
    return LR_MIN + 0.5 * (LR - LR_MIN) * (1 + math.cos(math.pi * p))


def batches(data, gen, device):
    starts = torch.randint(0, len(data) - SEQ - 1, (BATCH,), generator=gen)
    x = torch.stack([torch.from_numpy(data[s:s + SEQ + 1].astype(np.int64)) for s in starts.tolist()]).to(device)
    return x[:, :-1], x[:, 1:]


@torch.no_grad()
def val_loss(model, val, device, n_ctx=SEQ):
    model.eval()
    losses = []
    for s in range(0, len(val) - n_ctx - 1, n_ctx):
        x = torch.from_numpy(val[s:s + n_ctx + 1].astype(np.int64)).to(device)[None]
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x[:, :-1]).logits.float()
        losses.append(torch.nn.functional.cross_entropy(logits[0], x[0, 1:]).item())
    model.train()
    return float(np.mean(losses))


@torch.no_grad()
def llama_cpp_ppl(model, tokens, n_ctx, bos, device):
    """Exactly the protocol of rotor perplexity / llama-perplexity, in float32 on bf16-rounded weights."""
    nll, count, chunks = 0.0, 0, []
    for c in range(len(tokens) // n_ctx):
        chunk = torch.from_numpy(tokens[c * n_ctx:(c + 1) * n_ctx].astype(np.int64)).clone()
        chunk[0] = bos
        logits = model(input_ids=chunk[None].to(device)).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        first = n_ctx // 2
        tgt = chunk[first + 1:].to(device)
        part = -logp[first:n_ctx - 1].gather(1, tgt[:, None]).sum().item()
        nll += part
        count += n_ctx - 1 - first
        chunks.append(part)
    return {"n_ctx": n_ctx, "chunks": len(chunks), "tokens_scored": count, "ppl": math.exp(nll / count),
            "chunk_nll": chunks}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--state", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--minutes", type=float, default=8.0)
    ap.add_argument("--steps", type=int, default=700)
    ap.add_argument("--save-every", type=int, default=250)
    ap.add_argument("--finish", action="store_true")
    args = ap.parse_args()
    device = "cuda"
    torch.backends.cuda.matmul.allow_tf32 = True
    train = np.fromfile(os.path.join(args.data, "train.bin"), dtype=np.uint16)
    val = np.fromfile(os.path.join(args.data, "val.bin"), dtype=np.uint16)
    os.makedirs(args.state, exist_ok=True)
    torch.manual_seed(1611)
    model = LlamaForCausalLM(make_config()).to(device)
    def branch_dropout(module, _inputs, output):  # GPT-2-style residual dropout on each branch, train() only
        if isinstance(output, tuple):
            return (torch.nn.functional.dropout(output[0], DROPOUT, module.training),) + tuple(output[1:])
        return torch.nn.functional.dropout(output, DROPOUT, module.training)
    for layer in model.model.layers:
        layer.self_attn.register_forward_hook(branch_dropout)
        layer.mlp.register_forward_hook(branch_dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1, fused=True)
    gen = torch.Generator().manual_seed(1611)
    step, log, seen, best = 0, [], 0, (float("inf"), -1)
    ckpt = os.path.join(args.state, "state.pt")
    if os.path.exists(ckpt):
        st = torch.load(ckpt, map_location=device, weights_only=False)
        model.load_state_dict(st["model"])
        opt.load_state_dict(st["opt"])
        gen.set_state(st["gen"])
        step, log, seen, best = st["step"], st["log"], st["seen"], tuple(st["best"])
        print(f"resumed at step {step}")

    def save():
        torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "gen": gen.get_state(), "step": step,
                    "log": log, "seen": seen, "best": list(best)}, ckpt + ".tmp")
        os.replace(ckpt + ".tmp", ckpt)

    t0 = time.time()
    model.train()
    while step < args.steps and not args.finish and time.time() - t0 < args.minutes * 60:
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps)
        x, y = batches(train, gen, device)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(input_ids=x).logits
        loss = torch.nn.functional.cross_entropy(logits.float().view(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += x.numel()
        if step % 50 == 0 or step == args.steps:
            vl = val_loss(model, val, device)
            log.append({"step": step, "train_loss": round(loss.item(), 4), "val_loss": round(vl, 4), "tokens": seen,
                        "seconds": round(time.time() - t0, 1)})
            print(json.dumps(log[-1]), flush=True)
            if vl < best[0]:
                best = (vl, step)
                torch.save(model.state_dict(), os.path.join(args.state, "best.pt"))
        if step % args.save_every == 0:
            save()
    save()
    if step < args.steps and not args.finish:
        print(f"stopped at step {step} of {args.steps}; call again to continue")
        return

    # Export the best checkpoint (by validation loss) in bf16.
    model.load_state_dict(torch.load(os.path.join(args.state, "best.pt"), map_location=device))
    model = model.to(torch.bfloat16)
    mdir = os.path.join(args.out, "model")
    model.save_pretrained(mdir, safe_serialization=True, max_shard_size="12MB")
    shutil.copy(os.path.join(args.data, "tokenizer.json"), mdir)
    with open(os.path.join(args.out, "training_log.txt"), "w") as f:
        f.write(f"# best val loss {best[0]:.4f} at step {best[1]}; batch {BATCH}x{SEQ}; config {json.dumps(CONFIG)}\n")
        for row in log:
            f.write(json.dumps(row) + "\n")
    model = model.to(torch.float32).eval()  # bf16-rounded weights, float32 arithmetic
    model.config._attn_implementation = "eager"
    bos = CONFIG["bos_token_id"]
    evals = {str(n): llama_cpp_ppl(model, val, n, bos, device) for n in (512, 2048)}
    json.dump({"best_val_loss": best[0], "best_step": best[1], "perplexity": evals}, open(os.path.join(args.out, "eval.json"), "w"), indent=1)
    print({k: v["ppl"] for k, v in evals.items()})
    # greedy continuations, from token ids made by the same BPE (train_bpe.encode)
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "model"))
    import train_bpe
    tok = json.load(open(os.path.join(args.data, "tokenizer.json")))
    vocab = tok["model"]["vocab"]
    rank = {tuple(m.split(" ")): r for r, m in enumerate(tok["model"]["merges"])}
    out = []
    for p in PROMPTS:
        ids = [bos] + [vocab[t] for t in train_bpe.encode(p, rank)]
        x = torch.tensor([ids], device=device)
        with torch.no_grad():
            for _ in range(48):
                nxt = model(input_ids=x).logits[0, -1].argmax().item()
                x = torch.cat([x, torch.tensor([[nxt]], device=device)], dim=1)
        out.append({"prompt": p, "prompt_ids": ids, "ids": x[0].tolist()})
    json.dump(out, open(os.path.join(args.out, "greedy.json"), "w"), indent=1)
    print("exported to", args.out)


if __name__ == "__main__":
    main()
