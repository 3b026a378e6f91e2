// Gemma 4's chat template served over the small model's weights: the format is detected (its own
// tool-call syntax, the thought channel), its recommended sampling (temperature 1.0, top_p 0.95,
// top_k 64) is the default, tools and tool results render, enable_thinking reaches the template.
// (What the small model writes is arbitrary; turning Gemma 4 output into tool_calls and
// reasoning_content is tested with canned outputs in tests/chat/test_parse.cpp and
// tests/server/test_api_gemma4.cpp.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { GEMMA4, MODEL, client, fetchJson } from './common.mjs';

const ai = client(GEMMA4, 'unused');
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
  { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: '{"temperature": 18}' },
];

test('the template is detected as Gemma 4 (tool calls and the thought channel)', async () => {
  const p = (await fetchJson(GEMMA4, '/props', { key: null })).json;
  assert.deepEqual(p.chat_format, { tool_calls: 'gemma4', reasoning: true });
  assert.match(p.chat_template, /<\|tool_call>call:/);
});

test("Gemma 4's recommended sampling is the default, and requests without sampling fields get it", async () => {
  const d = (await fetchJson(GEMMA4, '/props', { key: null })).json.default_generation_settings.params;
  assert.equal(d.temperature, 1);
  assert.equal(d.top_k, 64);
  assert.ok(Math.abs(d.top_p - 0.95) < 1e-6, String(d.top_p));
  const implicit = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 16, seed: 5 });
  const explicit = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 16, seed: 5, temperature: 1, top_p: 0.95, top_k: 64 });
  assert.equal(implicit.choices[0].message.content, explicit.choices[0].message.content);
});

test('tools and tool results render; replies keep the OpenAI shape', async () => {
  const plain = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 4, temperature: 0 });
  const withTools = await ai.chat.completions.create({ model: MODEL, messages: ask, tools, max_tokens: 4, temperature: 0 });
  assert.ok(withTools.usage.prompt_tokens > plain.usage.prompt_tokens + 20, 'tool declarations in the system turn');
  const back = await ai.chat.completions.create({ model: MODEL, messages: roundTrip, tools, max_tokens: 4, temperature: 0 });
  assert.ok(back.usage.prompt_tokens > withTools.usage.prompt_tokens);
  for (const r of [plain, withTools, back]) {
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.ok(['stop', 'length', 'tool_calls'].includes(r.choices[0].finish_reason));
  }
});

test('chat_template_kwargs reach the template (enable_thinking)', async () => {
  const off = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 2, temperature: 0 });
  const on = await ai.chat.completions.create({ model: MODEL, messages: ask, max_tokens: 2, temperature: 0, chat_template_kwargs: { enable_thinking: true } });
  // on: a system turn with <|think|>; off: an empty thought channel after the generation prompt
  assert.notEqual(on.usage.prompt_tokens, off.usage.prompt_tokens);
});
