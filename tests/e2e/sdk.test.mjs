// The official openai SDK against the gateway: chat (buffered and
// streamed), completions, embeddings and the model list, each compared
// with what the sim answers to the same request sent to it directly.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

const KEY_ALL = 'sk-e2e-sdk-all';
const KEY_ONE = 'sk-e2e-sdk-one';
let fast, slow, gw, client, direct, directSlow;

before(async () => {
  fast = await lib.startSim({ seed: 11 });
  slow = await lib.startSim({ seed: 11, ttftMs: 150, tps: 20 });
  gw = await lib.startGateway({
    providers: [lib.simProvider('simfast', fast), lib.simProvider('simslow', slow)],
    offerings: [
      { id: 'simfast/fast', provider: 'simfast', model: 'sim-fast' },
      { id: 'simfast/premium', provider: 'simfast', model: 'sim-premium' },
      { id: 'simfast/emb', provider: 'simfast', model: 'text-embedding-3-small' },
      { id: 'simslow/slow', provider: 'simslow', model: 'sim-fast' },
    ],
    models: [
      { name: 'fast', offerings: ['simfast/fast'] },
      { name: 'premium', offerings: ['simfast/premium'] },
      { name: 'emb', offerings: ['simfast/emb'] },
      { name: 'slow', offerings: ['simslow/slow'] },
    ],
    keys: lib.keyEntries({ all: KEY_ALL, one: KEY_ONE }, { one: ['fast'] }),
  });
  client = gw.client(KEY_ALL);
  direct = fast.client();
  directSlow = slow.client();
});
after(lib.stopAll);

const MESSAGES = [
  { role: 'system', content: 'You are terse.' },
  { role: 'user', content: 'Name three rivers, please.' },
];

describe('chat completions', () => {
  test('non-stream: content and usage equal the sim, stats match the usage', async () => {
    const before = await fast.model('sim-fast');
    const res = await client.chat.completions.create({ model: 'fast', messages: MESSAGES });
    const after = await fast.model('sim-fast');
    const ref = await direct.chat.completions.create({ model: 'sim-fast', messages: MESSAGES });

    assert.equal(res.object, 'chat.completion');
    assert.match(res.id, /^chatcmpl-sim-[0-9a-f]{16}$/, 'the id is the sim\'s');
    assert.notEqual(res.id, ref.id);
    assert.equal(res.model, 'sim-fast', 'the model is the upstream name the sim answered with');
    assert.equal(res.system_fingerprint, 'fp_sim');
    assert.equal(res.choices.length, 1);
    assert.equal(res.choices[0].message.role, 'assistant');
    assert.ok(res.choices[0].message.content.length > 0);
    assert.equal(res.choices[0].message.content, ref.choices[0].message.content);
    assert.equal(res.choices[0].finish_reason, ref.choices[0].finish_reason);
    assert.deepEqual(res.usage, ref.usage);
    assert.ok(res.usage.prompt_tokens > 0 && res.usage.completion_tokens > 0);
    assert.equal(res.usage.total_tokens, res.usage.prompt_tokens + res.usage.completion_tokens);

    assert.equal(after.requests - before.requests, 1);
    assert.equal(after.streams - before.streams, 0);
    assert.equal(after.prompt_tokens - before.prompt_tokens, res.usage.prompt_tokens);
    assert.equal(after.completion_tokens - before.completion_tokens, res.usage.completion_tokens);

    assert.match(res._request_id ?? '', /^req_[0-9a-f]+$/, 'the gateway\'s X-Request-Id');
  });

  test('max_tokens cuts the same words short with finish_reason length', async () => {
    const full = await client.chat.completions.create({ model: 'fast', messages: MESSAGES });
    const cut = await client.chat.completions.create({ model: 'fast', messages: MESSAGES, max_tokens: 3 });
    assert.equal(cut.usage.completion_tokens, 3);
    assert.equal(cut.choices[0].finish_reason, 'length');
    assert.ok(full.choices[0].message.content.startsWith(cut.choices[0].message.content));
  });

  test('stream: deltas equal the non-stream content, no usage chunk unless asked', async () => {
    const ref = await client.chat.completions.create({ model: 'fast', messages: MESSAGES });
    const before = await fast.model('sim-fast');
    const stream = await client.chat.completions.create({ model: 'fast', messages: MESSAGES, stream: true });
    let text = '';
    let chunks = 0;
    let finish = null;
    for await (const c of stream) {
      chunks++;
      assert.equal(c.object, 'chat.completion.chunk');
      assert.match(c.id, /^chatcmpl-sim-/);
      assert.equal(c.model, 'sim-fast');
      assert.ok(!c.usage, `no usage chunk was asked for, got ${JSON.stringify(c)}`);
      assert.equal(c.choices.length, 1, 'every chunk relayed has a choice');
      text += c.choices[0].delta?.content ?? '';
      finish = c.choices[0].finish_reason ?? finish;
    }
    assert.equal(text, ref.choices[0].message.content);
    assert.equal(finish, ref.choices[0].finish_reason);
    assert.ok(chunks >= ref.usage.completion_tokens + 1);
    // the gateway asked the sim for usage on the client's behalf
    const after = await fast.model('sim-fast');
    assert.equal(after.streams - before.streams, 1);
    assert.equal(after.completion_tokens - before.completion_tokens, ref.usage.completion_tokens);
  });

  test('stream with include_usage: the usage chunk is relayed and correct', async () => {
    const ref = await client.chat.completions.create({ model: 'fast', messages: MESSAGES });
    const { data: stream, response } = await client.chat.completions.create({
      model: 'fast', messages: MESSAGES, stream: true, stream_options: { include_usage: true },
    }).withResponse();
    let text = '';
    const usages = [];
    let last;
    for await (const c of stream) {
      if (c.usage) usages.push(c);
      text += c.choices[0]?.delta?.content ?? '';
      last = c;
    }
    assert.equal(text, ref.choices[0].message.content);
    assert.equal(usages.length, 1, 'exactly one usage chunk');
    assert.equal(usages[0], last, 'the usage chunk is the last');
    assert.deepEqual(usages[0].choices, []);
    assert.deepEqual(usages[0].usage, ref.usage);
    assert.ok(response.headers.get('x-request-id'));
  });

  test('stream_options false, null or {}: no usage chunk, yet the gateway meters the stream', async () => {
    for (const so of [{ include_usage: false }, null, {}, { include_usage: null }]) {
      const rid = `so-${JSON.stringify(so).replace(/\W/g, '')}`;
      const r = await gw.post('/v1/chat/completions', { model: 'fast', messages: MESSAGES, max_tokens: 4, stream: true,
                                                         stream_options: so }, { key: KEY_ALL, headers: { 'X-Request-Id': rid } });
      assert.equal(r.status, 200);
      const events = lib.sseData(await r.text());
      assert.equal(events.at(-1), '[DONE]');
      for (const e of events.slice(0, -1)) {
        const chunk = JSON.parse(e);
        assert.ok(!chunk.usage, `stream_options ${JSON.stringify(so)}: no usage chunk, got ${e}`);
        assert.equal(chunk.choices.length, 1);
      }
      const line = await gw.requestLog(rid);
      assert.equal(line.completion_tokens, 4, 'usage was captured upstream');
    }
  });

  test('a model name with JSON escapes is routed like the plain one', async () => {
    const r = await gw.post('/v1/chat/completions',
      '{"model":"f\\u0061st","messages":[{"role":"user","content":"hi"}],"max_tokens":2}', { key: KEY_ALL });
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    assert.equal(body.model, 'sim-fast');
  });

  test('stream is relayed incrementally, not buffered', async () => {
    // 20 tokens at 20 per second: the sim takes about a second
    const body = { model: 'slow', messages: MESSAGES, max_tokens: 20, stream: true };
    const t0 = Date.now();
    const stream = await client.chat.completions.create(body);
    const arrivals = [];
    let text = '';
    for await (const c of stream) {
      arrivals.push(Date.now());
      text += c.choices[0]?.delta?.content ?? '';
    }
    const ref = await directSlow.chat.completions.create({ ...body, model: 'sim-fast', stream: false });
    assert.equal(text, ref.choices[0].message.content);
    const spread = arrivals.at(-1) - arrivals[0];
    // the sim spreads its 20 tokens over ~950 ms; a buffering relay would
    // deliver them all within a few ms of each other
    assert.ok(spread >= 500, `first and last chunk arrived ${spread} ms apart`);
    const distinct = new Set(arrivals.map((t) => Math.floor(t / 20))).size;
    assert.ok(distinct >= 8, `chunks arrived at ${distinct} distinct times`);
    assert.ok(arrivals[0] - t0 < arrivals.at(-1) - t0 - 400, 'the first chunk comes well before the last');
  });
});

describe('completions', () => {
  test('non-stream equals the sim; stream concatenates to the same text', async () => {
    const body = { model: 'fast', prompt: 'Say this is a test', max_tokens: 12 };
    const res = await client.completions.create(body);
    const ref = await direct.completions.create({ ...body, model: 'sim-fast' });
    assert.equal(res.object, 'text_completion');
    assert.match(res.id, /^cmpl-sim-/);
    assert.equal(res.model, 'sim-fast');
    assert.equal(res.choices[0].text, ref.choices[0].text);
    assert.deepEqual(res.usage, ref.usage);
    assert.equal(res.usage.completion_tokens, 12);

    const stream = await client.completions.create({ ...body, stream: true });
    let text = '';
    for await (const c of stream) {
      assert.ok(!c.usage, 'no usage chunk unless asked');
      text += c.choices[0]?.text ?? '';
    }
    assert.equal(text, res.choices[0].text);

    const s2 = await client.completions.create({ ...body, stream: true, stream_options: { include_usage: true } });
    let usage = null;
    for await (const c of s2) if (c.usage) usage = c.usage;
    assert.deepEqual(usage, res.usage);
  });
});

describe('embeddings', () => {
  const input = ['The food was delicious.', 'The waiter was friendly.'];

  test('SDK default (base64) and explicit float equal the sim\'s vectors', async () => {
    const b64 = await client.embeddings.create({ model: 'emb', input });
    const flt = await client.embeddings.create({ model: 'emb', input, encoding_format: 'float' });
    const refB64 = await direct.embeddings.create({ model: 'text-embedding-3-small', input });
    const refFlt = await direct.embeddings.create({ model: 'text-embedding-3-small', input, encoding_format: 'float' });

    assert.equal(b64.object, 'list');
    assert.equal(b64.data.length, 2);
    assert.equal(b64.model, 'text-embedding-3-small');
    assert.deepEqual(b64.usage, refB64.usage);
    assert.ok(b64.usage.prompt_tokens > 0);
    for (let i = 0; i < 2; i++) {
      assert.equal(b64.data[i].index, i);
      assert.equal(b64.data[i].embedding.length, 16);
      assert.deepEqual(Array.from(b64.data[i].embedding), Array.from(refB64.data[i].embedding));
      assert.deepEqual(flt.data[i].embedding, refFlt.data[i].embedding);
      // the two encodings carry the same float32 values
      assert.deepEqual(flt.data[i].embedding.map(Math.fround), Array.from(b64.data[i].embedding));
    }
    assert.notDeepEqual(flt.data[0].embedding, flt.data[1].embedding);
  });

  test('a raw base64 request is passed through as base64', async () => {
    const r = await gw.post('/v1/embeddings', { model: 'emb', input: 'hi', encoding_format: 'base64' }, { key: KEY_ALL });
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.equal(typeof body.data[0].embedding, 'string');
    assert.equal(Buffer.from(body.data[0].embedding, 'base64').length, 16 * 4);
  });
});

describe('models', () => {
  test('list shows every model to an unrestricted key', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids.sort(), ['emb', 'fast', 'premium', 'slow']);
  });

  test('list shows only the allowed model to a restricted key', async () => {
    const one = gw.client(KEY_ONE);
    const page = await one.models.list();
    assert.deepEqual(page.data.map((m) => m.id), ['fast']);
    assert.equal(page.data[0].object, 'model');
  });

  test('retrieve works for an allowed model and 404s for a forbidden one', async () => {
    const one = gw.client(KEY_ONE);
    const m = await one.models.retrieve('fast');
    assert.equal(m.id, 'fast');
    assert.equal(m.object, 'model');
    const e = await lib.sdkError(() => one.models.retrieve('premium'), 404);
    assert.equal(e.code, 'model_not_found');
    const e2 = await lib.sdkError(() => one.models.retrieve('no-such-model'), 404);
    assert.equal(e2.code, 'model_not_found');
    // the same model is there for the unrestricted key
    assert.equal((await client.models.retrieve('premium')).id, 'premium');
  });

  test('a restricted key cannot use a forbidden model', async () => {
    const one = gw.client(KEY_ONE);
    const e = await lib.sdkError(() => one.chat.completions.create({ model: 'premium', messages: MESSAGES }), 404);
    assert.equal(e.code, 'model_not_found');
    const ok = await one.chat.completions.create({ model: 'fast', messages: MESSAGES, max_tokens: 2 });
    assert.equal(ok.usage.completion_tokens, 2);
  });
});
