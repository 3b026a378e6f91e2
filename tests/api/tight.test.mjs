// The tight server (1 slot, no queue): a client that goes away frees the slot, and a request beyond
// the slot and the queue is answered 503 at once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import { TIGHT, MODEL, client, fetchJson, metric, sleep } from './common.mjs';

const ai = client(TIGHT, 'unused');

async function waitFor(cond, what, ms = 10000) {
  const t0 = Date.now();
  while (Date.now() - t0 < ms) {
    if (await cond()) return;
    await sleep(25);
  }
  assert.fail(`timed out waiting for ${what}`);
}

const metrics = async () => (await fetchJson(TIGHT, '/metrics', { key: null })).text;

test('a client that disconnects cancels its generation and frees the slot', async () => {
  const before = metric(await metrics(), 'rotor:requests_cancelled_total');
  const stream = await ai.completions.create({ model: MODEL, prompt: 'In the beginning', max_tokens: 1000, ignore_eos: true, stream: true });
  let got = 0;
  for await (const c of stream) {
    if (c.choices[0]?.text) got++;
    if (got === 3) break; // leaving the loop aborts the HTTP request
  }
  await waitFor(async () => {
    const m = await metrics();
    return metric(m, 'rotor:requests_cancelled_total') === before + 1 && metric(m, 'rotor:requests_processing') === 0;
  }, 'the cancelled request to leave its slot');
  const predicted = metric(await metrics(), 'rotor:tokens_predicted_total');
  assert.ok(predicted < 900, `generation went on after the client left (${predicted} tokens)`);
  const r = await ai.completions.create({ model: MODEL, prompt: 'Jesus wept.', max_tokens: 4 });
  assert.equal(r.choices[0].finish_reason, 'length');
});

test('beyond the slots and the queue: 503', async () => {
  const stream = await ai.completions.create({ model: MODEL, prompt: 'In the beginning', max_tokens: 1000, ignore_eos: true, stream: true });
  const it = stream[Symbol.asyncIterator]();
  await it.next(); // the long request holds the only slot
  await assert.rejects(ai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2 }), (e) => {
    assert.ok(e instanceof OpenAI.InternalServerError || e.status === 503, String(e));
    assert.equal(e.status, 503);
    assert.equal(e.code, 'server_busy');
    return true;
  });
  assert.ok(metric(await metrics(), 'rotor:requests_rejected_total') >= 1);
  stream.controller.abort();
  await waitFor(async () => metric(await metrics(), 'rotor:requests_processing') === 0, 'the slot to free');
  const r = await ai.completions.create({ model: MODEL, prompt: 'x', max_tokens: 2 });
  assert.equal(r.usage.completion_tokens, 2);
});
