// The main server through the official openai client: chat and completions, streamed and not,
// usage, stop, logprobs, errors, the API key, info endpoints, and many concurrent clients.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { MAIN, KEY, MODEL, PROMPTS, client, fetchJson, metric } from './common.mjs';

const ai = client();

async function chatText(stream, params) {
  if (!stream) {
    const r = await ai.chat.completions.create(params);
    return { text: r.choices[0].message.content, finish: r.choices[0].finish_reason, usage: r.usage };
  }
  const s = await ai.chat.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null, id = null;
  for await (const c of s) {
    id ??= c.id;
    assert.equal(c.id, id, 'one id per stream');
    assert.equal(c.object, 'chat.completion.chunk');
    if (c.usage) usage = c.usage;
    if (c.choices.length === 0) continue;
    text += c.choices[0].delta.content ?? '';
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  return { text, finish, usage };
}

async function completionText(stream, params) {
  if (!stream) {
    const r = await ai.completions.create(params);
    return { text: r.choices[0].text, finish: r.choices[0].finish_reason, usage: r.usage };
  }
  const s = await ai.completions.create({ ...params, stream: true, stream_options: { include_usage: true } });
  let text = '', finish = null, usage = null;
  for await (const c of s) {
    if (c.usage) usage = c.usage;
    if (c.choices.length === 0) continue;
    text += c.choices[0].text;
    if (c.choices[0].finish_reason) finish = c.choices[0].finish_reason;
  }
  return { text, finish, usage };
}

test('models list', async () => {
  const list = await ai.models.list();
  assert.equal(list.data.length, 1);
  assert.equal(list.data[0].id, MODEL);
  assert.equal(list.data[0].object, 'model');
});

test('chat completion, not streamed', async () => {
  const r = await ai.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'In the beginning' }], max_tokens: 12, temperature: 0,
  });
  assert.equal(r.object, 'chat.completion');
  assert.match(r.id, /^chatcmpl-/);
  assert.equal(r.model, MODEL);
  assert.equal(r.choices.length, 1);
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 12);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 12);
});

test('chat streamed equals chat not streamed, with usage last', async () => {
  const params = { model: MODEL, messages: [{ role: 'system', content: 'The words of the Preacher.' }, { role: 'user', content: 'Vanity of vanities' }], max_tokens: 24, temperature: 0 };
  const a = await chatText(false, params);
  const b = await chatText(true, params);
  assert.equal(b.text, a.text);
  assert.equal(b.finish, a.finish);
  assert.deepEqual(b.usage.completion_tokens, a.usage.completion_tokens);
  assert.deepEqual(b.usage.prompt_tokens, a.usage.prompt_tokens);
});

test('completions streamed and not, legacy logprobs', async () => {
  const params = { model: MODEL, prompt: 'In the beginning', max_tokens: 12, temperature: 0 };
  const a = await completionText(false, params);
  const b = await completionText(true, params);
  assert.ok(a.text.startsWith(' of the LORD, the day of the LORD'), a.text);
  assert.equal(b.text, a.text);
  assert.equal(a.finish, 'length');
  assert.equal(a.usage.prompt_tokens, 4);
  const lp = await ai.completions.create({ ...params, max_tokens: 3, logprobs: 2 });
  const l = lp.choices[0].logprobs;
  assert.equal(l.tokens.length, 3);
  assert.equal(l.tokens.join(''), lp.choices[0].text);
  assert.equal(Object.keys(l.top_logprobs[0]).length, 2);
  assert.ok(l.token_logprobs.every((x) => x <= 0));
});

test('stop strings and chat logprobs', async () => {
  const r = await ai.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'In the beginning' }], max_tokens: 40, temperature: 0, stop: [' LORD'],
  });
  assert.equal(r.choices[0].finish_reason, 'stop');
  assert.ok(!r.choices[0].message.content.includes('LORD'));
  const l = await ai.chat.completions.create({
    model: MODEL, messages: [{ role: 'user', content: 'In the beginning' }], max_tokens: 6, temperature: 0, logprobs: true, top_logprobs: 3,
  });
  const content = l.choices[0].logprobs.content;
  assert.equal(content.length, 6);
  assert.equal(content.map((c) => c.token).join(''), l.choices[0].message.content);
  for (const c of content) {
    assert.equal(c.top_logprobs.length, 3);
    assert.equal(c.top_logprobs[0].token, c.token, 'greedy picks the most likely');
    assert.ok(c.logprob <= 0);
  }
});

test('seeded sampling is reproducible', async () => {
  const p = { model: MODEL, prompt: 'The LORD is my shepherd;', max_tokens: 16, temperature: 1.2, seed: 7 };
  const a = await ai.completions.create(p);
  const b = await ai.completions.create(p);
  assert.equal(a.choices[0].text, b.choices[0].text);
});

test('bad requests are 400s in the OpenAI error shape', async () => {
  const cases = [
    [{ model: MODEL, messages: [] }, 'messages'],
    [{ model: MODEL, messages: 'hello' }, 'messages'],
    [{ model: MODEL, messages: [{ role: 'user', content: 'x' }], temperature: 'hot' }, 'temperature'],
    [{ model: MODEL, messages: [{ role: 'user', content: 'x' }], max_tokens: -5 }, 'max_tokens'],
    [{ model: MODEL, messages: [{ role: 'user' }] }, 'messages[0].content'],
    [{ model: MODEL, messages: [{ role: 'user', content: 'x' }], n: 3 }, 'n'],
  ];
  for (const [body, param] of cases) {
    await assert.rejects(ai.chat.completions.create(body), (e) => {
      assert.ok(e instanceof OpenAI.BadRequestError, String(e));
      assert.equal(e.status, 400);
      assert.equal(e.param, param);
      assert.equal(e.type, 'invalid_request_error');
      return true;
    });
  }
  await assert.rejects(ai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x' }] }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.code, 'model_not_found');
    return true;
  });
  const long = 'And the LORD spake unto Moses, saying, '.repeat(200);
  await assert.rejects(ai.completions.create({ model: MODEL, prompt: long }), (e) => {
    assert.equal(e.status, 400);
    assert.equal(e.code, 'context_length_exceeded');
    assert.match(e.message, /context per request/);
    return true;
  });
  const bad = await fetchJson(MAIN, '/v1/chat/completions', { method: 'POST', body: '{"messages": [', raw: true });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'invalid_json');
  assert.deepEqual(Object.keys(bad.json.error).sort(), ['code', 'message', 'param', 'type']);
  const nf = await fetchJson(MAIN, '/v1/nothing');
  assert.equal(nf.status, 404);
  assert.equal((await fetchJson(MAIN, '/health')).status, 200, 'still healthy');
});

test('API key', async () => {
  await assert.rejects(client(MAIN, 'wrong-key').models.list(), (e) => {
    assert.ok(e instanceof OpenAI.AuthenticationError);
    assert.equal(e.status, 401);
    assert.equal(e.code, 'invalid_api_key');
    return true;
  });
  assert.equal((await fetchJson(MAIN, '/v1/models', { key: null })).status, 401);
  assert.equal((await fetchJson(MAIN, '/metrics', { key: null })).status, 401);
  assert.equal((await fetchJson(MAIN, '/health', { key: null })).status, 200);
});

test('health, metrics, props, slots, tokenize', async () => {
  assert.deepEqual((await fetchJson(MAIN, '/health')).json, { status: 'ok' });
  const m = await fetchJson(MAIN, '/metrics');
  assert.equal(m.status, 200);
  for (const name of ['rotor:prompt_tokens_total', 'rotor:tokens_predicted_total', 'rotor:requests_processing',
    'rotor:requests_deferred', 'rotor:kv_cache_usage_ratio', 'rotor:kv_cache_bytes_used', 'rotor:kv_cache_bytes_capacity'])
    assert.ok(metric(m.text, name) !== undefined, name);
  assert.match(m.text, /rotor:kv_cache_bytes_capacity\{type_k="f16",type_v="f16"\} \d+/);
  assert.ok(metric(m.text, 'rotor:tokens_predicted_total') > 0);
  const p = (await fetchJson(MAIN, '/props')).json;
  assert.equal(p.total_slots, 8);
  assert.equal(p.n_ctx_per_slot, 1024);
  const s = (await fetchJson(MAIN, '/slots')).json;
  assert.equal(s.length, 8);
  const t = (await fetchJson(MAIN, '/tokenize', { method: 'POST', body: { content: 'In the beginning', add_special: true } })).json;
  assert.equal(t.tokens.length, 4);
  const d = (await fetchJson(MAIN, '/detokenize', { method: 'POST', body: { tokens: t.tokens } })).json;
  assert.equal(d.content, 'In the beginning');
});

// Many clients at once: every response is complete, belongs to its own request (equals that prompt's
// greedy output computed alone) whether streamed or not, through chat or completions.
test('32 concurrent clients x 8 requests', async () => {
  const N_TOK = 16;
  const single = [];
  for (const prompt of PROMPTS)
    single.push((await completionText(false, { model: MODEL, prompt, max_tokens: N_TOK, temperature: 0 })).text);
  const singleChat = [];
  for (const prompt of PROMPTS)
    singleChat.push((await chatText(false, { model: MODEL, messages: [{ role: 'user', content: prompt }], max_tokens: N_TOK, temperature: 0 })).text);
  let checked = 0;
  async function worker(w) {
    for (let k = 0; k < 8; k++) {
      const i = (w * 8 + k) % PROMPTS.length;
      const stream = (w + k) % 2 === 1;
      let r, expect;
      if ((w + 2 * k) % 3 === 0) {
        r = await chatText(stream, { model: MODEL, messages: [{ role: 'user', content: PROMPTS[i] }], max_tokens: N_TOK, temperature: 0 });
        expect = singleChat[i];
      } else {
        r = await completionText(stream, { model: MODEL, prompt: PROMPTS[i], max_tokens: N_TOK, temperature: 0 });
        expect = single[i];
      }
      assert.equal(r.text, expect, `worker ${w} request ${k} prompt ${i} stream=${stream}`);
      assert.ok(r.finish === 'length' || r.finish === 'stop', `finish ${r.finish}`);
      if (r.finish === 'length') assert.equal(r.usage.completion_tokens, N_TOK);
      checked++;
    }
  }
  await Promise.all(Array.from({ length: 32 }, (_, w) => worker(w)));
  assert.equal(checked, 256);
});

// The greedy completion through the server equals `rotor run` on the same prompt (when that command exists).
test('greedy /v1/completions equals rotor run', async (t) => {
  const bin = process.env.ROTOR_BIN, model = process.env.ROTOR_MODEL;
  let has = false;
  try { execFileSync(bin, ['run', '--help'], { stdio: 'pipe' }); has = true; } catch (e) { has = e.status === 0; }
  if (!has) return t.skip('no `rotor run` command in this build');
  const prompt = 'And the LORD spake unto Moses, saying,';
  const out = execFileSync(bin, ['run', '-m', model, '-p', prompt, '-n', '24', '--temp', '0'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  const r = await completionText(false, { model: MODEL, prompt, max_tokens: 24, temperature: 0 });
  // rotor run prints the prompt, the continuation and (maybe) a final newline.
  assert.ok(out === prompt + r.text || out === prompt + r.text + '\n', `rotor run printed:\n${JSON.stringify(out)}\nserver:\n${JSON.stringify(r.text)}`);
});
