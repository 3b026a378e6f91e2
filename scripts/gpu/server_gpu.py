#!/usr/bin/env python3
"""`rotor serve --gpu` on the GPU machine: correctness checks, the concurrency benchmark and the
planner-versus-measured GPU memory check. Python's standard library only (that machine has no Node).

  server_gpu.py check  --bin build/rotor --model M.gguf
      greedy outputs: GPU sequential == GPU with 8 concurrent requests on 4 slots == CPU server; the
      same with the q8_0 KV cache; prefix reuse across slots (a device copy) gives the CPU's outputs
      and reports cached tokens; a client that disconnects frees its slot; /props and /metrics.
  server_gpu.py bench  --bin build/rotor --model M.gguf [--clients 1,2,4,8,16] [--tokens 64] [--requests 4]
      aggregate tok/s and time to first token against N concurrent streaming clients (as
      tests/api/bench.mjs does on the CPU); prints a markdown table.
  server_gpu.py memory --bin build/rotor --model M.gguf --slots N --ctx C --kv T
      starts the server, fills every slot to its whole context, samples the GPU's used memory
      (nvidia-smi, every 50 ms, baseline taken before the server starts) and compares the peak with
      `rotor plan --slots N --ctx C` for the same settings; exit status 1 if they differ by more than 3%.
"""
import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

PROMPTS = [
    "In the beginning", "And the LORD spake unto Moses, saying,", "Blessed are the poor in spirit:",
    "The LORD is my shepherd;", "And God said, Let there be light:", "For God so loved the world,",
    "Vanity of vanities, saith the Preacher,", "And it came to pass in those days,",
]
LONG = ("And the earth was without form, and void; and darkness was upon the face of the deep. And the Spirit of "
        "God moved upon the face of the waters. And God said, Let there be light: and there was light. And God saw "
        "the light, that it was good: and God divided the light from the darkness. And God called the light Day, "
        "and the darkness he called Night. And the evening and the morning were the first day. And God said, Let "
        "there be a firmament in the midst of the waters, and let it divide the waters from the waters. ")


class Server:
    def __init__(self, binary, model, extra, cmd=None):
        """cmd: a shell command that starts the server instead (e.g. `make run-qwen`); it runs in its own
        process group, which stop() ends."""
        self.log = []
        argv = ["bash", "-c", cmd] if cmd else [binary, "serve", "-m", model, "--port", "0", *extra]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        self.port = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.log.append(line)
                m = re.search(r"listening on http://[^:]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                if "ready" in line or "error" in line:
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(600) or self.port is None or self.proc.poll() is not None:
            raise RuntimeError("server did not start:\n" + "".join(self.log))
        for _ in range(600):
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("server not healthy:\n" + "".join(self.log))

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read().decode()

    def post(self, path, body):
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        c.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read().decode()
        if r.status != 200:
            raise RuntimeError(f"{path}: {r.status} {data}")
        return json.loads(data)

    def complete(self, prompt, n, **kw):
        j = self.post("/v1/completions", {"prompt": prompt, "max_tokens": n, "temperature": 0, **kw})
        return j["choices"][0]["text"], j["usage"]

    def stream(self, prompt, n, stop_after=None):
        """Streams a completion; returns (ttft seconds, generated tokens, seconds). stop_after: disconnect
        after that many text chunks."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        t0 = time.perf_counter()
        c.request("POST", "/v1/completions", json.dumps({"prompt": prompt, "max_tokens": n, "temperature": 0,
                                                         "ignore_eos": True, "stream": True,
                                                         "stream_options": {"include_usage": True}}),
                  {"Content-Type": "application/json"})
        r = c.getresponse()
        ttft, chunks, tokens = None, 0, None
        for raw in r:
            line = raw.decode().strip()
            if not line.startswith("data:") or line == "data: [DONE]":
                continue
            j = json.loads(line[5:])
            if j.get("usage"):
                tokens = j["usage"]["completion_tokens"]
            if j["choices"] and j["choices"][0].get("text"):
                if ttft is None:
                    ttft = time.perf_counter() - t0
                chunks += 1
                if stop_after and chunks >= stop_after:
                    c.close()
                    break
        return ttft, tokens if tokens is not None else chunks, time.perf_counter() - t0

    def stop(self):
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def parallel(fn, items):
    out = [None] * len(items)
    errs = []

    def run(i, x):
        try:
            out[i] = fn(x)
        except Exception as e:  # noqa: BLE001 - reported below
            errs.append(e)

    ts = [threading.Thread(target=run, args=(i, x)) for i, x in enumerate(items)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if errs:
        raise errs[0]
    return out


failures = []
GPU = ["--gpu"]  # --no-gpu (a dry run of this script on a machine without one) empties it


def expect(cond, what):
    print(("PASS " if cond else "FAIL ") + what, flush=True)
    if not cond:
        failures.append(what)


def first_diff(a, b):
    i = 0
    while i < min(len(a), len(b)) and a[i] == b[i]:
        i += 1
    return f"differ at char {i}: {a[i:i + 30]!r} vs {b[i:i + 30]!r}"


def check(a):
    n = 48
    for kv in ("f16", "q8_0"):
        kvargs = ["--kv-k", kv, "--kv-v", kv, "--slots", "4", "--ctx-per-slot", "512"]
        cpu = Server(a.bin, a.model, kvargs + ["--threads", "8"])
        cpu_out = [cpu.complete(p, n)[0] for p in PROMPTS]
        reuse_prompts = [LONG + s for s in ("And God", "And the", "Let there")]
        cpu.complete(LONG, 8)
        cpu_reuse = parallel(lambda p: cpu.complete(p, n)[0], reuse_prompts)
        cpu.stop()

        gpu = Server(a.bin, a.model, kvargs + GPU)
        seq = [gpu.complete(p, n)[0] for p in PROMPTS]
        conc = parallel(lambda p: gpu.complete(p, n)[0], PROMPTS)
        for i, p in enumerate(PROMPTS):
            expect(seq[i] == conc[i], f"[{kv}] GPU greedy '{p}': alone == 8 concurrent on 4 slots" +
                   ("" if seq[i] == conc[i] else " (" + first_diff(seq[i], conc[i]) + ")"))
            expect(seq[i] == cpu_out[i], f"[{kv}] GPU greedy '{p}' == CPU server" +
                   ("" if seq[i] == cpu_out[i] else " (" + first_diff(seq[i], cpu_out[i]) + ")"))
        # prefix reuse: LONG sits in one slot; three requests extending it land on three slots, the others
        # sharing its prefix through a device copy
        gpu.complete(LONG, 8)
        res = parallel(lambda p: gpu.complete(p, n), reuse_prompts)
        for i, (text, usage) in enumerate(res):
            cached = usage.get("prompt_tokens_details", {}).get("cached_tokens", 0)
            expect(cached > 0, f"[{kv}] prefix reuse request {i}: {cached} of {usage['prompt_tokens']} prompt tokens cached")
            expect(text == cpu_reuse[i], f"[{kv}] prefix reuse request {i} == CPU server" +
                   ("" if text == cpu_reuse[i] else " (" + first_diff(text, cpu_reuse[i]) + ")"))
        if kv == "f16":
            status, props = gpu.get("/props")
            props = json.loads(props)
            expect(status == 200 and (props.get("device", "cpu") != "cpu") == bool(GPU), f"/props device: {props.get('device')}")
            ttft, chunks, _ = gpu.stream(PROMPTS[0], 4000, stop_after=3)
            idle = False
            for _ in range(100):
                slots = json.loads(gpu.get("/slots")[1])
                if not any(s["is_processing"] for s in slots):
                    idle = True
                    break
                time.sleep(0.05)
            metrics = gpu.get("/metrics")[1]
            m = re.search(r"^rotor:requests_cancelled_total (\S+)$", metrics, re.M)
            expect(idle and m and float(m.group(1)) >= 1, "a client that disconnects frees its slot (cancelled counted)")
            expect("kv_cache_bytes" in metrics or "kv_bytes" in metrics, "/metrics reports KV bytes")
        gpu.stop()
    print(f"\n{len(failures)} failures")
    return 1 if failures else 0


def bench(a):
    srv = Server(a.bin, a.model, GPU + ["--slots", str(a.slots), "--ctx-per-slot", str(a.ctx), "--kv-k", a.kv,
                                        "--kv-v", a.kv, "--queue", "256"])
    device = json.loads(srv.get("/props")[1]).get("device")
    srv.stream("Warm up " * 8, 16)
    rows = []
    for clients in [int(x) for x in a.clients.split(",")]:
        counter = [0]
        lock = threading.Lock()

        def client(ci):
            res = []
            for r in range(a.requests):
                with lock:
                    counter[0] += 1
                    k = counter[0]
                res.append(srv.stream(f"{k}. {PROMPTS[k % len(PROMPTS)]}", a.tokens))
            return res

        t0 = time.perf_counter()
        out = parallel(client, list(range(clients)))
        wall = time.perf_counter() - t0
        flat = [x for c in out for x in c]
        tokens = sum(x[1] for x in flat)
        ttfts = sorted(x[0] * 1000 for x in flat if x[0] is not None)
        decode = [(x[1] - 1) / (x[2] - x[0]) for x in flat if x[0] is not None and x[2] > x[0] and x[1] > 1]
        rows.append((clients, len(flat), tokens, wall, tokens / wall, sum(decode) / len(decode), sum(ttfts) / len(ttfts),
                     ttfts[len(ttfts) // 2], ttfts[int(len(ttfts) * 0.9)]))
    srv.stop()
    print(f"\nmodel {a.model}, {device}, --slots {a.slots} --ctx-per-slot {a.ctx}, KV {a.kv}, {a.tokens} tokens per "
          f"request (greedy, ignore_eos), {a.requests} requests per client\n")
    print("| clients | requests | tokens | wall s | aggregate tok/s | per-request decode tok/s | TTFT mean ms | TTFT p50 ms | TTFT p90 ms |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]:.1f} | {r[4]:.1f} | {r[5]:.1f} | {r[6]:.0f} | {r[7]:.0f} | {r[8]:.0f} |")
    return 0


def gpu_used_mib():
    out = subprocess.run(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits", "-i", "0"],
                         capture_output=True, text=True, check=True).stdout
    return int(out.strip().splitlines()[0])


def memory(a):
    plan = json.loads(subprocess.run([a.bin, "plan", "-m", a.model, "--vram", "1000", "--kv-k", a.kv, "--kv-v", a.kv,
                                      "--slots", str(a.slots), "--ctx", str(a.ctx), "--json"],
                                     capture_output=True, text=True, check=True).stdout)
    b = plan["plans"][0]["breakdown"]
    base = gpu_used_mib()
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], gpu_used_mib())
            time.sleep(0.05)

    threading.Thread(target=sample, daemon=True).start()
    srv = Server(a.bin, a.model, ["--gpu", "--slots", str(a.slots), "--ctx-per-slot", str(a.ctx), "--kv-k", a.kv,
                                  "--kv-v", a.kv, "--batch", "512"], cmd=a.cmd)
    # Every slot reads a prompt of almost its whole context in 512-token chunks, then decodes: the
    # step buffers and the whole cache are in use.
    words = max(1, min(a.ctx // 2, 256))
    parallel(lambda i: srv.complete(f"{i} " + "the " * words, 8, ignore_eos=True), list(range(a.slots)))
    time.sleep(0.3)
    done.set()
    if a.cmd:  # a started-by-command server: show that it answers a chat request too
        print(f"command: {a.cmd}")
        try:
            j = srv.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "Say hello."}],
                                                  "max_tokens": 8, "temperature": 0})
            print(f"  chat answer ({j['usage']['completion_tokens']} tokens): {j['choices'][0]['message'].get('content')!r}")
        except RuntimeError as e:
            print(f"  chat request failed: {e}")
        print("  " + "  ".join(l for l in srv.log if "profile" in l or "slots" in l)[:2000])
    gpu_line = [l.strip() for l in srv.log if l.startswith("GPU memory")]
    srv.stop()
    measured = (peak[0] - base) * 1048576
    predicted = b["total"]
    err = (measured - predicted) / measured
    print(f"{a.model.split('/')[-1]} KV {a.kv}, {a.slots} slots x {a.ctx}: predicted {predicted / 2**30:.3f} GiB "
          f"(weights {b['weights'] / 2**30:.3f} + KV {b['kv'] / 2**30:.3f} + compute {b['compute'] / 2**30:.3f} + "
          f"overhead {b['overhead'] / 2**30:.3f}), measured peak {measured / 2**30:.3f} GiB "
          f"(nvidia-smi, {peak[0]} - {base} MiB), error {100 * err:+.2f}%")
    for l in gpu_line:
        print("  server: " + l)
    return 0 if abs(err) <= 0.03 else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["check", "bench", "memory"])
    ap.add_argument("--bin", default="build/rotor")
    ap.add_argument("--model", required=True)
    ap.add_argument("--slots", type=int, default=16)
    ap.add_argument("--ctx", type=int, default=1024)
    ap.add_argument("--kv", default="f16")
    ap.add_argument("--clients", default="1,2,4,8,16")
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--requests", type=int, default=4)
    ap.add_argument("--cmd", help="memory: start the server with this shell command (its settings must be the "
                    "--slots/--ctx/--kv given, which the planner is asked about)")
    ap.add_argument("--no-gpu", action="store_true", help="dry run on the CPU (checks this script, not the GPU)")
    a = ap.parse_args()
    if a.no_gpu:
        GPU.clear()
    return {"check": check, "bench": bench, "memory": memory}[a.mode](a)


if __name__ == "__main__":
    sys.exit(main())
