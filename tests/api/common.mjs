// Shared by the API tests: where the servers run (set by run.sh) and small helpers.
import OpenAI from 'openai';

function need(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run the tests through tests/api/run.sh`);
  return v;
}

// The main server: 8 slots, an API key. The tight one: 1 slot, no queue, no key. The qwen3 and gemma4
// ones: the small model's weights with Qwen3's / Gemma 4's chat template (tools, thinking).
export const MAIN = process.env.ROTOR_URL_MAIN ?? need('ROTOR_URL_MAIN');
export const TIGHT = process.env.ROTOR_URL_TIGHT ?? need('ROTOR_URL_TIGHT');
export const QWEN3 = process.env.ROTOR_URL_QWEN3 ?? need('ROTOR_URL_QWEN3');
export const GEMMA4 = process.env.ROTOR_URL_GEMMA4 ?? need('ROTOR_URL_GEMMA4');
export const KEY = process.env.ROTOR_API_KEY_TEST ?? need('ROTOR_API_KEY_TEST');
export const MODEL = process.env.ROTOR_MODEL_ID ?? 'rotor-kjv-11m-q8_0';

export function client(base = MAIN, apiKey = KEY) {
  // No retries: a 503 must reach the test, not be retried away.
  return new OpenAI({ baseURL: `${base}/v1`, apiKey, maxRetries: 0, timeout: 300_000 });
}

export async function fetchJson(base, path, { method = 'GET', body, key = KEY, raw = false } = {}) {
  const headers = { 'Content-Type': 'application/json' };
  if (key) headers.Authorization = `Bearer ${key}`;
  const res = await fetch(base + path, { method, headers, body: raw ? body : body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  let json = null;
  try { json = JSON.parse(text); } catch { /* metrics are text */ }
  return { status: res.status, headers: res.headers, text, json };
}

export function metric(text, name) {
  const line = text.split('\n').find((l) => l.startsWith(name + ' ') || l.startsWith(name + '{'));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Greedy prompts with distinct continuations.
export const PROMPTS = [
  'In the beginning',
  'And the LORD spake unto Moses, saying,',
  'Blessed are the poor in spirit:',
  'The LORD is my shepherd;',
  'And God said, Let there be light:',
  'Now the serpent was more subtil than any beast of the field',
  'For God so loved the world,',
  "In my Father's house are many mansions:",
  'Vanity of vanities, saith the Preacher,',
  'And it came to pass in those days,',
  'Honour thy father and thy mother:',
  'By the rivers of Babylon,',
  'The heavens declare the glory of God;',
  'Ask, and it shall be given you;',
  'Jesus wept.',
  'Let not your heart be troubled:',
];
