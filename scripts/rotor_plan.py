"""Shared by gen_profiles.py and gen_memory_tables.py: metadata-only GGUFs of the target models
(`rotor synth --metadata-only`) and `rotor plan --json` on them. Every number comes from rotor's
planner; these scripts only choose what to ask and lay the answers out."""
import json
import os
import subprocess
import tempfile

CARDS = [  # rotor's device names (src/plan/planner.cpp) and how people call them
    ("rtx-4060ti-16", "RTX 4060 Ti 16 GB"),
    ("rtx-4090", "RTX 4090 24 GB"),
    ("rtx-5090", "RTX 5090 32 GB"),
    ("a100-80", "A100 80 GB"),
    ("h100", "H100 80 GB"),
    ("h200", "H200 141 GB"),
]
KV_TYPES = ["f16", "q8_0", "q4_0h", "tcq4", "tcq3"]
OVERHEAD_MIB = 512  # rotor plan's default runtime allowance (CUDA context, kernels), until measured


class Planner:
    def __init__(self, rotor):
        self.rotor = rotor
        self.tmp = tempfile.TemporaryDirectory(prefix="rotor_plan_")
        self.files = {}

    def model(self, shape, mix):
        key = (shape, mix)
        if key not in self.files:
            path = os.path.join(self.tmp.name, f"{shape}-{mix}.gguf")
            subprocess.run([self.rotor, "synth", "--shape", shape, "--mix", mix, "-o", path, "--metadata-only"],
                           check=True, stdout=subprocess.DEVNULL)
            self.files[key] = path
        return self.files[key]

    def plan(self, shape, mix, card, *args):
        out = subprocess.run([self.rotor, "plan", "-m", self.model(shape, mix), "--gpu", card,
                              "--overhead", str(OVERHEAD_MIB), "--json", *args],
                             check=True, stdout=subprocess.PIPE, text=True).stdout
        return json.loads(out)

    def max_ctx(self, shape, mix, card, k, v, slots=1):
        """Largest context per slot for `slots` slots, and the total bytes it takes."""
        p = self.plan(shape, mix, card, "--kv-k", k, "--kv-v", v, "--slots", str(slots))
        row = p["plans"][0]["max_ctx_per_slot"][slots - 1]
        return row["ctx"], row["total_bytes"], p

    def max_slots(self, shape, mix, card, k, v, ctx):
        p = self.plan(shape, mix, card, "--kv-k", k, "--kv-v", v, "--ctx", str(ctx))
        return p["plans"][0]["max_slots"], p
