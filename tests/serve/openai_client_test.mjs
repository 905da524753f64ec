// The official `openai` npm client (pinned in web/package-lock.json) against
// `hart serve` on 127.0.0.1: models, chat, completions and embeddings,
// streaming and not, and its error handling. Run by ctest through
// `node --test`; HART_BIN, HART_SOURCE_DIR and HART_WEB_DIR come from CMake.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { tempStore, hartCli, makeTinyLlama, startServe, shutdown } from '../node/hart_server.mjs';

const require = createRequire(join(process.env.HART_WEB_DIR, 'package.json'));
const OpenAI = require('openai');

const HART = process.env.HART_BIN;
const { dir, store } = tempStore('hart_openai_');
const hart = hartCli(HART, store);
let server;
let client;

before(async () => {
  makeTinyLlama(process.env.HART_SOURCE_DIR, dir, '--type', 'q8_0', '--layers', '2');
  hart('init');
  hart('ingest', join(dir, 'model.gguf'), '--model', 'tiny', '--license', 'mit');
  let port;
  ({ server, port } = await startServe(HART, store, dir));
  client = new OpenAI({ baseURL: `http://127.0.0.1:${port}/v1`, apiKey: 'unused', maxRetries: 0 });
});

after(async () => {
  await shutdown(server, dir);
});

test('models.list and models.retrieve', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  assert.ok(ids.includes('tiny'), ids.join(','));
  assert.ok(ids.includes('tiny@1'), ids.join(','));
  const m = await client.models.retrieve('tiny@1');
  assert.equal(m.id, 'tiny@1');
  assert.equal(m.object, 'model');
});

test('chat.completions.create, not streamed', async () => {
  const r = await client.chat.completions.create({
    model: 'tiny', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hello' }],
    max_tokens: 6, temperature: 0, seed: 1, logprobs: true, top_logprobs: 2,
  });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(typeof r.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens <= 6);
  assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + r.usage.completion_tokens);
  assert.equal(r.choices[0].logprobs.content.length, r.usage.completion_tokens);
  assert.equal(r.choices[0].logprobs.content[0].top_logprobs.length, 2);
});

test('chat.completions.create, streamed, equals the non-streamed text (greedy)', async () => {
  const body = { model: 'tiny', messages: [{ role: 'user', content: 'Hello' }], max_completion_tokens: 8, temperature: 0 };
  const whole = await client.chat.completions.create(body);
  const stream = await client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
  let text = '';
  let usage = null;
  let finish = null;
  for await (const chunk of stream) {
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (chunk.usage) usage = chunk.usage;
    if (chunk.choices.length) {
      text += chunk.choices[0].delta.content ?? '';
      finish = chunk.choices[0].finish_reason ?? finish;
    }
  }
  assert.equal(text, whole.choices[0].message.content);
  assert.equal(finish, whole.choices[0].finish_reason);
  assert.equal(usage.completion_tokens, whole.usage.completion_tokens);
});

test('completions.create, streamed and not, with stop and seed', async () => {
  const r = await client.completions.create({ model: 'tiny@1', prompt: 'Once', max_tokens: 8, temperature: 0.8, seed: 7 });
  const again = await client.completions.create({ model: 'tiny@1', prompt: 'Once', max_tokens: 8, temperature: 0.8, seed: 7 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices[0].text, again.choices[0].text);
  // The server's llama.cpp-style timings ride along, as on chat.
  assert.equal(r.timings.predicted_n, r.usage.completion_tokens, JSON.stringify(r));
  assert.equal(r.timings.prompt_n + r.timings.cache_n, r.usage.prompt_tokens, JSON.stringify(r));
  const stream = await client.completions.create({ model: 'tiny@1', prompt: 'Once', max_tokens: 8, temperature: 0.8,
    seed: 7, stream: true, stream_options: { include_usage: true } });
  let text = '';
  const chunks = [];
  for await (const c of stream) {
    chunks.push(c);
    text += c.choices[0]?.text ?? '';
  }
  assert.equal(text, r.choices[0].text);
  const last = chunks[chunks.length - 1];
  assert.deepEqual(last.choices, []);
  assert.equal(last.timings.predicted_n, last.usage.completion_tokens, JSON.stringify(last));
  assert.ok(chunks.find((c) => c.choices[0]?.finish_reason).timings, 'the finishing chunk carries the timings');
  const stopped = await client.completions.create({ model: 'tiny', prompt: 'Once', max_tokens: 8, temperature: 0,
    stop: ['\n'] });
  assert.ok(!stopped.choices[0].text.includes('\n'));
});

test('embeddings.create, float and base64', async () => {
  const r = await client.embeddings.create({ model: 'tiny', input: ['hello world', 'goodbye'] });
  assert.equal(r.data.length, 2);
  assert.ok(r.data[0].embedding.length > 0);
  const norm = Math.sqrt(r.data[0].embedding.reduce((s, x) => s + x * x, 0));
  assert.ok(Math.abs(norm - 1) < 1e-3, String(norm));
  assert.ok(r.usage.prompt_tokens > 0);
  // The client asks for base64 by default and decodes it.
  const b = await client.embeddings.create({ model: 'tiny', input: 'hello world', encoding_format: 'base64' });
  assert.equal(typeof b.data[0].embedding, 'string');
  const one = await client.embeddings.create({ model: 'tiny', input: 'hello world' });
  assert.deepEqual(one.data[0].embedding.map((x) => x.toFixed(5)), r.data[0].embedding.map((x) => x.toFixed(5)));
});

test('errors arrive as the client\'s typed errors', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'nosuch', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && /nosuch/.test(e.message));
  await assert.rejects(
    client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'x' }], top_p: 7 }),
    (e) => e instanceof OpenAI.BadRequestError && e.param === null || e.status === 400);
});
