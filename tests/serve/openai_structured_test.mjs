// The official `openai` npm client against `hart serve`: tool calls
// (named and required, streamed and not, results sent back), response_format
// json_schema / json_object, n > 1 and logit_bias, and the 400s that name
// the field. The model is the tiny random-weight one, sampled at
// temperature 1: the constraints must hold whatever it wants. Its context
// is raised to 2048 tokens so tool definitions (one token per byte) fit.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { tempStore, hartCli, makeTinyLlama, startServe, shutdown } from '../node/hart_server.mjs';

const require = createRequire(join(process.env.HART_WEB_DIR, 'package.json'));
const OpenAI = require('openai');

const HART = process.env.HART_BIN;
const { dir, store } = tempStore('hart_openai_structured_');
const hart = hartCli(HART, store);
let server;
let client;

before(async () => {
  makeTinyLlama(process.env.HART_SOURCE_DIR, dir, '--type', 'q8_0', '--layers', '1', '--ctx', '2048');
  hart('init');
  hart('ingest', join(dir, 'model.gguf'), '--model', 'tiny', '--license', 'mit');
  let port;
  ({ server, port } = await startServe(HART, store, dir));
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await shutdown(server, dir);
});

const tools = [
  { type: 'function', function: { name: 'get_weather', description: 'Weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { enum: ['c', 'f'] } },
      required: ['city', 'unit'] } } },
  { type: 'function', function: { name: 'add', description: 'Adds two integers',
    parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } },
      required: ['a', 'b'], additionalProperties: false } } },
];

function checkArgs(name, args) {
  const a = JSON.parse(args);
  if (name === 'add') {
    assert.deepEqual(Object.keys(a).sort(), ['a', 'b']);
    assert.ok(Number.isInteger(a.a) && Number.isInteger(a.b), args);
  } else {
    assert.equal(name, 'get_weather');
    assert.equal(typeof a.city, 'string');
    assert.ok(['c', 'f'].includes(a.unit), args);
  }
}

const ask = [{ role: 'user', content: 'What is 2 + 3?' }];

test('a named tool_choice is honoured, not streamed', async () => {
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: 'tiny', messages: ask, tools, seed, temperature: 1,
      tool_choice: { type: 'function', function: { name: 'add' } } });
    const c = r.choices[0];
    assert.equal(c.finish_reason, 'tool_calls');
    assert.equal(c.message.content, null);
    assert.equal(c.message.tool_calls.length, 1);
    const call = c.message.tool_calls[0];
    assert.equal(call.type, 'function');
    assert.match(call.id, /^call_/);
    assert.equal(call.function.name, 'add');
    checkArgs('add', call.function.arguments);
  }
});

test('tool_choice required, streamed: the client assembles the calls', async () => {
  for (const seed of [4, 5]) {
    const stream = await client.chat.completions.create({ model: 'tiny', messages: ask, tools, seed,
      tool_choice: 'required', stream: true });
    const calls = [];
    let finish = null;
    let content = '';
    for await (const chunk of stream) {
      const d = chunk.choices[0]?.delta ?? {};
      content += d.content ?? '';
      for (const t of d.tool_calls ?? []) {
        calls[t.index] ??= { id: '', name: '', arguments: '' };
        if (t.id) calls[t.index].id = t.id;
        if (t.function?.name) calls[t.index].name += t.function.name;
        if (t.function?.arguments) calls[t.index].arguments += t.function.arguments;
      }
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    assert.equal(content, '');
    assert.equal(finish, 'tool_calls');
    assert.ok(calls.length >= 1);
    for (const c of calls) checkArgs(c.name, c.arguments);
  }
});

test('the stream helper of the client, and tool results sent back', async () => {
  const runner = client.beta.chat.completions.stream({ model: 'tiny', messages: ask, tools, seed: 9,
    tool_choice: { type: 'function', function: { name: 'get_weather' } } });
  const final = await runner.finalChatCompletion();
  const call = final.choices[0].message.tool_calls[0];
  assert.equal(call.function.name, 'get_weather');
  checkArgs('get_weather', call.function.arguments);
  const r = await client.chat.completions.create({ model: 'tiny', tools, max_tokens: 4, seed: 1, messages: [
    ...ask,
    { role: 'assistant', content: null, tool_calls: [call] },
    { role: 'tool', tool_call_id: call.id, content: '{"temp": 21}' },
  ] });
  assert.equal(r.object, 'chat.completion');
  assert.ok(r.usage.prompt_tokens > 0);
});

test('response_format json_schema and json_object validate, streamed and not', async () => {
  const schema = { type: 'object', properties: { name: { type: 'string' }, tags: { type: 'array',
    items: { enum: ['a', 'b'] }, maxItems: 3 }, ok: { type: 'boolean' } }, required: ['name', 'tags', 'ok'],
  additionalProperties: false };
  for (const seed of [1, 2, 3]) {
    const r = await client.chat.completions.create({ model: 'tiny', messages: ask, seed, max_tokens: 80,
      response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } } });
    const v = JSON.parse(r.choices[0].message.content);
    assert.equal(typeof v.name, 'string');
    assert.ok(Array.isArray(v.tags) && v.tags.length <= 3 && v.tags.every((t) => ['a', 'b'].includes(t)));
    assert.equal(typeof v.ok, 'boolean');
    assert.equal(r.choices[0].finish_reason, 'stop');
    const stream = await client.chat.completions.create({ model: 'tiny', messages: ask, seed, max_tokens: 80,
      stream: true, response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } } });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta?.content ?? '';
    assert.equal(text, r.choices[0].message.content);
  }
  const o = await client.chat.completions.create({ model: 'tiny', messages: ask, seed: 3, max_tokens: 30,
    response_format: { type: 'json_object' } });
  assert.equal(typeof JSON.parse(o.choices[0].message.content), 'object');
});

test('n > 1: one choice per index, streamed and not', async () => {
  const r = await client.chat.completions.create({ model: 'tiny', messages: ask, n: 3, seed: 5, max_tokens: 6 });
  assert.deepEqual(r.choices.map((c) => c.index), [0, 1, 2]);
  const stream = await client.completions.create({ model: 'tiny', prompt: 'Once', n: 3, seed: 5, max_tokens: 6,
    stream: true });
  const texts = ['', '', ''];
  for await (const c of stream) for (const ch of c.choices) texts[ch.index] += ch.text;
  const whole = await client.completions.create({ model: 'tiny', prompt: 'Once', n: 3, seed: 5, max_tokens: 6 });
  assert.deepEqual(texts, whole.choices.map((c) => c.text));
  assert.ok(new Set(texts).size > 1, texts.join('|'));
  // Choice i is the same request with n = 1 and seed + i (decoded in one
  // batch, the prompt run once).
  for (let i = 0; i < 3; i++) {
    const one = await client.completions.create({ model: 'tiny', prompt: 'Once', n: 1, seed: 5 + i, max_tokens: 6 });
    assert.equal(whole.choices[i].text, one.choices[0].text, `choice ${i}`);
  }
  // Greedy: the choices agree.
  const greedy = await client.chat.completions.create({ model: 'tiny', messages: ask, n: 2, temperature: 0,
    max_tokens: 6 });
  assert.equal(greedy.choices.length, 2);
  assert.equal(greedy.choices[0].message.content, greedy.choices[1].message.content);
});

test('streamed text equals the whole, a cut-off last character (U+FFFD) included', async () => {
  // The random-weight model often ends inside a UTF-8 character (byte
  // tokens): the held-back rest is streamed as the last delta.
  let replaced = 0;
  for (let seed = 1; seed <= 12; seed++) {
    for (const n of [1, 2]) {
      const body = { model: 'tiny', prompt: 'x', max_tokens: 2, seed, n };
      const whole = await client.completions.create(body);
      const texts = Array(n).fill('');
      for await (const c of await client.completions.create({ ...body, stream: true }))
        for (const ch of c.choices) texts[ch.index] += ch.text;
      assert.deepEqual(texts, whole.choices.map((c) => c.text), `seed ${seed}`);
      replaced += whole.choices.filter((c) => c.text.includes('\uFFFD')).length;
      const chat = await client.chat.completions.create({ model: 'tiny', messages: ask, max_tokens: 2, seed, n });
      const parts = Array(n).fill('');
      for await (const c of await client.chat.completions.create({ model: 'tiny', messages: ask, max_tokens: 2, seed,
        n, stream: true }))
        for (const ch of c.choices) parts[ch.index] += ch.delta?.content ?? '';
      assert.deepEqual(parts, chat.choices.map((c) => c.message.content), `chat seed ${seed}`);
    }
  }
  assert.ok(replaced > 0, 'no completion ended inside a character');
});

test('logit_bias forces and bans tokens', async () => {
  // Byte tokens: <0x41> ('A') is id 3 + 0x41 = 68.
  const r = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 5, temperature: 0,
    logit_bias: { 68: 100 } });
  assert.equal(r.choices[0].text, 'AAAAA');
  const b = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 5, temperature: 0,
    logit_bias: { 68: 100, 69: 100 } });
  const banned = await client.completions.create({ model: 'tiny', prompt: 'x', max_tokens: 5, temperature: 0,
    logit_bias: { 68: -100, 69: 100 } });
  assert.equal(banned.choices[0].text, 'BBBBB');
  assert.ok(/^[AB]{5}$/.test(b.choices[0].text));
});

test('bad input: 400 naming the field', async () => {
  const bad = async (body, re) => assert.rejects(
    client.chat.completions.create({ model: 'tiny', messages: ask, ...body }),
    (e) => e instanceof OpenAI.BadRequestError && re.test(e.message));
  await bad({ tools, tool_choice: { type: 'function', function: { name: 'mul' } } }, /tool_choice.*'mul'/);
  await bad({ n: 9 }, /'n'.*between 1 and 8/);
  await bad({ logit_bias: { 99999: 5 } }, /logit_bias.*99999/);
  await bad({ logit_bias: { 5: 500 } }, /logit_bias.*-100\.\.100/);
  await bad({ response_format: { type: 'json_schema', json_schema: { name: 'x',
    schema: { type: 'string', pattern: '^a' } } } }, /response_format\.json_schema\.schema.*pattern/);
  await bad({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object',
    properties: { d: { type: 'integer', minimum: 3 } } } } }] }, /tools\[0\]\.function\.parameters.*minimum/);
  await bad({ response_format: { type: 'json_schema', json_schema: { name: 'x',
    schema: { oneOf: [{ type: 'string' }, { type: 'string', maxLength: 2 }] } } } },
    /response_format\.json_schema\.schema.*oneOf.*branches 0 and 1/);
  await bad({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'objekt' } } }] },
    /tools\[0\]\.function\.parameters/);
});
