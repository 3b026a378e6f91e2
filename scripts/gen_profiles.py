#!/usr/bin/env python3
"""Writes profiles/*.json: per card, the model to run and two settings (long_context, throughput),
every number from `rotor plan`. tests/plan/test_profiles.cpp regenerates them and requires the
committed files to be identical, so they cannot drift from the planner.

usage: scripts/gen_profiles.py [--rotor build/rotor] [--out profiles]"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rotor_plan import CARDS, OVERHEAD_MIB, Planner  # noqa: E402

QWEN_Q4 = dict(name="Qwen3.5-27B", shape="qwen3.5-27b", quant="Q4_K_M", repo="unsloth/Qwen3.5-27B-GGUF",
               file="Qwen3.5-27B-Q4_K_M.gguf")
QWEN_Q3 = dict(name="Qwen3.5-27B", shape="qwen3.5-27b", quant="Q3_K_M", repo="unsloth/Qwen3.5-27B-GGUF",
               file="Qwen3.5-27B-Q3_K_M.gguf")

GEMMA_Q4 = dict(name="Gemma-4-26B-A4B", shape="gemma-4-26b-a4b", quant="Q4_K_M", repo="unsloth/gemma-4-26B-A4B-it-GGUF",
                file="gemma-4-26B-A4B-it-Q4_K_M.gguf")

WHY_16 = ("Neither Q4_K_M fits in 16 GB: Qwen3.5-27B Q4_K_M weighs 15.40 GiB and Gemma 4 26B-A4B Q4_K_M "
          "15.63 GiB before any KV cache, recurrent state, activations or the runtime's share (rotor plan: "
          "'does not fit'). Qwen3.5-27B at llama-quantize's stock Q3_K_M mix (12.38 GiB) leaves room for a "
          "long context; Unsloth's UD-Q3_K_XL / UD-IQ3_XXS are not defined precisely enough in our references "
          "to plan for, so this profile plans the stock Q3_K_M file.")
WHY_BIG = ("Qwen3.5-27B Q4_K_M (15.40 GiB of weights, stock llama-quantize mix) is the headline model; "
           "the card holds it with room for KV cache.")

WHY_GEMMA = ("Gemma 4 26B-A4B Q4_K_M (15.63 GiB of weights; 4B parameters active per token, so it decodes "
             "faster than the dense 27B); only 5 of its 30 layers keep a whole-context KV cache, the others a "
             "ring of the 1024-token window.")

PROFILES = [  # file name, card, model; `serve --profile auto` picks by card and the model's file name
    ("rtx-4060ti-16", "rtx-4060ti-16", QWEN_Q3, WHY_16),
    ("rtx-4090", "rtx-4090", QWEN_Q4, WHY_BIG),
    ("rtx-5090", "rtx-5090", QWEN_Q4, WHY_BIG),
    ("a100-80", "a100-80", QWEN_Q4, WHY_BIG),
    ("h100", "h100", QWEN_Q4, WHY_BIG),
    ("h200", "h200", QWEN_Q4, WHY_BIG),
    # Gemma 4 26B-A4B Q4_K_M does not fit in 16 GB (see WHY_16)
    ("rtx-4090-gemma4", "rtx-4090", GEMMA_Q4, WHY_GEMMA),
    ("rtx-5090-gemma4", "rtx-5090", GEMMA_Q4, WHY_GEMMA),
    ("a100-80-gemma4", "a100-80", GEMMA_Q4, WHY_GEMMA),
    ("h100-gemma4", "h100", GEMMA_Q4, WHY_GEMMA),
    ("h200-gemma4", "h200", GEMMA_Q4, WHY_GEMMA),
]

# Both variants use KV types the GPU reads in place (the server runs profiles on the GPU).
# long_context: the most context per conversation with q4_0h (Hadamard-rotated q4_0, 4.5 bits), as
# many such slots as fit. (rotor's tcq4/tcq3, 3.625 bits and lower error, runs on the CPU only so far.)
# throughput: 32K per slot with q4_0h, most slots.
LONG_KV = ("q4_0h", "q4_0h")
THROUGHPUT_KV = ("q4_0h", "q4_0h")
THROUGHPUT_CTX = 32768


def profile(planner, card, label, model, why):
    shape, quant = model["shape"], model["quant"]
    ctx, total1, p = planner.max_ctx(shape, quant, card, *LONG_KV)
    if ctx <= 0:
        raise SystemExit(f"{model['name']} {quant} does not fit on {card}")
    long_slots, _ = planner.max_slots(shape, quant, card, *LONG_KV, ctx)
    tp_slots, tp = planner.max_slots(shape, quant, card, *THROUGHPUT_KV, THROUGHPUT_CTX)
    return {
        "name": card,
        "card": label,
        "device_bytes": p["device_bytes"],
        "usable_bytes": p["usable_bytes"],
        "model": dict(model, weights_bytes=p["weights_bytes"]),
        "why": why,
        "overhead_bytes": OVERHEAD_MIB << 20,
        "variants": {
            "long_context": {"slots": long_slots, "ctx_per_slot": ctx, "kv_k": LONG_KV[0], "kv_v": LONG_KV[1],
                             "kv_bytes_per_token": round(p["plans"][0]["kv_bytes_per_token"], 3),
                             "total_bytes_one_slot": total1},
            "throughput": {"slots": tp_slots, "ctx_per_slot": THROUGHPUT_CTX, "kv_k": THROUGHPUT_KV[0],
                           "kv_v": THROUGHPUT_KV[1],
                           "kv_bytes_per_token": round(tp["plans"][0]["kv_bytes_per_token"], 3)},
        },
        "generated_by": "scripts/gen_profiles.py (rotor synth --metadata-only, rotor plan --json)",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rotor", default=os.environ.get("ROTOR_BIN", "build/rotor"))
    ap.add_argument("--out", default="profiles")
    a = ap.parse_args()
    planner = Planner(a.rotor)
    labels = dict(CARDS)
    os.makedirs(a.out, exist_ok=True)
    for fname, card, model, why in PROFILES:
        with open(os.path.join(a.out, fname + ".json"), "w") as f:
            json.dump(profile(planner, card, labels[card], model, why), f, indent=2)
            f.write("\n")


if __name__ == "__main__":
    main()
