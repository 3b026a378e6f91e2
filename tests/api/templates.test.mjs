// A real model's chat template (Qwen3: Hermes-style tool calls, <think> reasoning) served over the
// small model's weights: tools and tool results render, chat_template_kwargs reach the template, and
// replies keep the OpenAI shape. (What the small model writes is arbitrary; the parsing of tool calls
// and reasoning from canned outputs is tested in tests/server/test_chat_stream.cpp.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { QWEN3, MODEL, client, fetchJson } from './common.mjs';

const ai = client(QWEN3, 'unused');
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'Current weather of a city',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
}];
const ask = [{ role: 'user', content: 'What is the weather in Paris?' }];
const roundTrip = [
  ...ask,
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 18}' },
];

function checkReply(r) {
  assert.equal(r.object, 'chat.completion');
  const c = r.choices[0];
  assert.equal(c.message.role, 'assistant');
  assert.ok(['stop', 'length', 'tool_calls'].includes(c.finish_reason), c.finish_reason);
  if (c.finish_reason === 'tool_calls') {
    for (const call of c.message.tool_calls) {
      assert.equal(call.type, 'function');
      assert.equal(typeof call.function.name, 'string');
      JSON.parse(call.function.arguments);
    }
  } else {
    assert.equal(typeof c.message.content, 'string');
  }
}

test('the template is detected as Hermes tool calls with reasoning', async () => {
  const p = (await fetchJson(QWEN3, '/props', { key: null })).json;
  assert.deepEqual(p.chat_format, { tool_calls: 'hermes', reasoning: true });
  assert.match(p.chat_template, /<tool_call>/);
});

test('tools are rendered into the prompt; tool results round-trip', async () => {
  const plain = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 4, temperature: 0 });
  const withTools = await ai.chat.completions.create({ model: MODEL, messages: ask, tools, max_tokens: 4, temperature: 0 });
  checkReply(plain);
  checkReply(withTools);
  assert.ok(withTools.usage.prompt_tokens > plain.usage.prompt_tokens + 20, 'tool list in the system prompt');
  const none = await ai.chat.completions.create({ model: MODEL, messages: ask, tools, tool_choice: 'none', max_tokens: 4, temperature: 0 });
  assert.equal(none.usage.prompt_tokens, plain.usage.prompt_tokens);
  const back = await ai.chat.completions.create({ model: MODEL, messages: roundTrip, tools, max_tokens: 4, temperature: 0 });
  checkReply(back);
  assert.ok(back.usage.prompt_tokens > withTools.usage.prompt_tokens);
});

test('chat_template_kwargs reach the template (enable_thinking)', async () => {
  const on = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 2, temperature: 0 });
  const off = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 2, temperature: 0, chat_template_kwargs: { enable_thinking: false } });
  // Qwen3 writes an empty <think></think> block into the prompt when thinking is off.
  assert.ok(off.usage.prompt_tokens > on.usage.prompt_tokens, `${off.usage.prompt_tokens} vs ${on.usage.prompt_tokens}`);
});

test('streaming with tools offered ends with a finish reason', async () => {
  const s = await ai.chat.completions.create({ model: MODEL, messages: roundTrip, tools, max_tokens: 12, temperature: 0, stream: true });
  let finish = null, text = '';
  for await (const c of s) {
    const d = c.choices[0]?.delta ?? {};
    if (d.content) text += d.content;
    if (c.choices[0]?.finish_reason) finish = c.choices[0].finish_reason;
  }
  const whole = await ai.chat.completions.create({ model: MODEL, messages: roundTrip, tools, max_tokens: 12, temperature: 0 });
  assert.equal(finish, whole.choices[0].finish_reason);
  if (finish !== 'tool_calls') assert.equal(text, whole.choices[0].message.content);
});
