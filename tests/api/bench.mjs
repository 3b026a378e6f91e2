// Server benchmark: aggregate generation throughput and time to first token for 1, 2, 4, 8, 16
// concurrent streaming clients. Starts its own `rotor serve` (port 0) unless --url is given.
//
//   node tests/api/bench.mjs --bin build/rotor [--model FILE] [--threads N] [--slots 16]
//        [--tokens 64] [--requests 4] [--clients 1,2,4,8,16] [--url http://127.0.0.1:8080]
//
// Each client sends --requests streaming /v1/completions requests one after another, greedy, with
// ignore_eos so every request generates exactly --tokens tokens. Prompts are distinct per request
// (a number first) so prefix reuse does not flatter the time to first token.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).reduce((acc, a, i, all) => {
  if (a.startsWith('--')) acc.push([a.slice(2), all[i + 1]]);
  return acc;
}, []));
const bin = args.bin ?? path.join(here, '../../build/rotor');
const model = args.model ?? path.join(here, '../../models/rotor-kjv-11m/rotor-kjv-11m-q8_0.gguf');
const threads = args.threads ?? String(os.cpus().length);
const slots = args.slots ?? '16';
const nTok = Number(args.tokens ?? 64);
const nReq = Number(args.requests ?? 4);
const clientCounts = (args.clients ?? '1,2,4,8,16').split(',').map(Number);

const PROMPTS = [
  'In the beginning', 'And the LORD spake unto Moses, saying,', 'Blessed are the poor in spirit:',
  'The LORD is my shepherd;', 'And God said, Let there be light:', 'For God so loved the world,',
  'Vanity of vanities, saith the Preacher,', 'And it came to pass in those days,',
];

async function startServer() {
  const p = spawn(bin, ['serve', '-m', model, '--port', '0', '--slots', slots, '--ctx-per-slot', '512',
    '--threads', threads, '--queue', '256'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  p.stderr.setEncoding('utf8');
  const port = await new Promise((resolve, reject) => {
    p.stderr.on('data', (d) => {
      log += d;
      const m = log.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m && log.includes(' ready:')) resolve(Number(m[1]));
    });
    p.on('exit', () => reject(new Error(`rotor serve exited:\n${log}`)));
  });
  return { proc: p, url: `http://127.0.0.1:${port}`, log: () => log };
}

// One streaming request; returns { ttft, total, tokens } in ms / count.
async function one(url, prompt) {
  const t0 = performance.now();
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: nTok, temperature: 0, ignore_eos: true, stream: true,
      stream_options: { include_usage: true } }),
  });
  if (res.status !== 200) throw new Error(`HTTP ${res.status}: ${await res.text()}`);
  let ttft = null, tokens = 0, buf = '';
  const dec = new TextDecoder();
  for await (const chunk of res.body) {
    buf += dec.decode(chunk, { stream: true });
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const ev = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (!ev.startsWith('data: ') || ev === 'data: [DONE]') continue;
      const j = JSON.parse(ev.slice(6));
      if (j.choices?.[0]?.text && ttft === null) ttft = performance.now() - t0;
      if (j.usage) tokens = j.usage.completion_tokens;
    }
  }
  return { ttft, total: performance.now() - t0, tokens };
}

function pct(xs, p) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))];
}

async function run(url, clients) {
  let counter = 0;
  const results = [];
  const t0 = performance.now();
  await Promise.all(Array.from({ length: clients }, async () => {
    for (let k = 0; k < nReq; k++) {
      const n = counter++;
      results.push(await one(url, `${n + 1}. ${PROMPTS[n % PROMPTS.length]}`));
    }
  }));
  const wall = (performance.now() - t0) / 1000;
  const tokens = results.reduce((a, r) => a + r.tokens, 0);
  const ttfts = results.map((r) => r.ttft);
  return {
    clients, requests: results.length, tokens, wall,
    tps: tokens / wall,
    perClient: results.reduce((a, r) => a + r.tokens / ((r.total - r.ttft) / 1000), 0) / results.length,
    ttftMean: ttfts.reduce((a, b) => a + b, 0) / ttfts.length,
    ttftP50: pct(ttfts, 0.5), ttftP90: pct(ttfts, 0.9),
  };
}

const server = args.url ? null : await startServer();
const url = args.url ?? server.url;
try {
  await one(url, 'warm up'); // first-touch costs out of the numbers
  const rows = [];
  for (const c of clientCounts) rows.push(await run(url, c));
  console.log(`date: ${new Date().toISOString()}`);
  console.log(`machine: ${os.cpus()[0].model}, ${os.cpus().length} logical CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`);
  console.log(`server: ${args.url ?? `${bin} serve --slots ${slots} --ctx-per-slot 512 --threads ${threads}`}`);
  console.log(`load: ${nReq} streaming requests per client, ${nTok} tokens each (greedy, ignore_eos), distinct prompts\n`);
  console.log('| clients | requests | tokens | wall s | aggregate tok/s | per-request decode tok/s | TTFT mean ms | TTFT p50 ms | TTFT p90 ms |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of rows)
    console.log(`| ${r.clients} | ${r.requests} | ${r.tokens} | ${r.wall.toFixed(1)} | ${r.tps.toFixed(1)} | ${r.perClient.toFixed(1)} | ${r.ttftMean.toFixed(0)} | ${r.ttftP50.toFixed(0)} | ${r.ttftP90.toFixed(0)} |`);
} finally {
  if (server) {
    server.proc.kill('SIGTERM');
    await once(server.proc, 'exit');
  }
}
