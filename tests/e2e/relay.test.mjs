// The relay under weight: large buffered answers, long streams to a client
// that stops reading for a while (backpressure), many streams at once, and
// the server.max_response_bytes cap on buffered answers.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-relay';
const LONG = 20000; // tokens of every answer of the `long` sim: ~5 MB of events
let long, paced, gw, capped, client, direct;

before(async () => {
  long = await lib.startSim({ seed: 21, conf: { completion_tokens: { min: LONG, max: LONG } } });
  paced = await lib.startSim({ seed: 21, ttftMs: 20, tps: 100 });
  const cfg = {
    providers: [lib.simProvider('long', long), lib.simProvider('paced', paced)],
    offerings: [
      { id: 'long/fast', provider: 'long', model: 'sim-fast' },
      { id: 'long/emb', provider: 'long', model: 'text-embedding-3-small' },
      { id: 'paced/fast', provider: 'paced', model: 'sim-fast' },
    ],
    models: [
      { name: 'long', offerings: ['long/fast'] },
      { name: 'emb', offerings: ['long/emb'] },
      { name: 'paced', offerings: ['paced/fast'] },
    ],
    keys: lib.keyEntries({ r: KEY }),
  };
  gw = await lib.startGateway(cfg);
  capped = await lib.startGateway({ ...cfg, server: { max_response_bytes: 1 << 20 } });
  client = gw.client(KEY);
  direct = long.client();
});
after(lib.stopAll);

const PROMPT = [{ role: 'user', content: 'Write everything you know.' }];

test('a 2 MB buffered embeddings answer arrives whole', async () => {
  const input = Array.from({ length: 300 }, (_, i) => `sentence number ${i}`);
  const body = { input, dimensions: 1024, encoding_format: 'float' };
  const res = await client.embeddings.create({ ...body, model: 'emb' });
  const ref = await direct.embeddings.create({ ...body, model: 'text-embedding-3-small' });
  assert.equal(res.data.length, 300);
  assert.equal(res.data[299].embedding.length, 1024);
  assert.deepEqual(res.data, ref.data);
  assert.deepEqual(res.usage, ref.usage);
});

test('a 5 MB stream arrives whole and in order', async () => {
  const stream = await client.chat.completions.create({
    model: 'long', messages: PROMPT, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let usage = null;
  for await (const c of stream) {
    text += c.choices[0]?.delta?.content ?? '';
    if (c.usage) usage = c.usage;
  }
  const ref = await direct.chat.completions.create({ model: 'sim-fast', messages: PROMPT });
  assert.equal(ref.usage.completion_tokens, LONG);
  assert.equal(text, ref.choices[0].message.content);
  assert.deepEqual(usage, ref.usage);
});

test('a client that stops reading for a while still gets the whole stream', async () => {
  const c = await lib.Raw.connect(gw.port);
  c.sock.pause(); // nothing is read: the gateway's queue and the kernel buffers fill
  await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
    body: { model: 'long', messages: PROMPT, stream: true },
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
  }));
  await lib.sleep(1000);
  c.sock.resume();
  const r = await c.response({ timeout: lib.ms(20000) });
  assert.equal(r.status, 200);
  const events = lib.sseData(r.text);
  assert.equal(events.at(-1), '[DONE]');
  const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('');
  const ref = await direct.chat.completions.create({ model: 'sim-fast', messages: PROMPT });
  assert.equal(text, ref.choices[0].message.content);
  c.destroy();
});

test('40 concurrent streams each get their own answer', async () => {
  const pacedDirect = paced.client();
  const results = await Promise.all(Array.from({ length: 40 }, async (_, i) => {
    const body = { messages: [{ role: 'user', content: `prompt number ${i}` }], max_tokens: 10 + (i % 7) };
    const s = await client.chat.completions.create({
      ...body, model: 'paced', stream: true, stream_options: { include_usage: i % 2 === 0 },
    });
    let text = '';
    let usage = null;
    for await (const ch of s) {
      text += ch.choices[0]?.delta?.content ?? '';
      if (ch.usage) usage = ch.usage;
    }
    const ref = await pacedDirect.chat.completions.create({ ...body, model: 'sim-fast' });
    assert.equal(text, ref.choices[0].message.content, `stream ${i}`);
    if (i % 2 === 0) assert.deepEqual(usage, ref.usage, `usage of stream ${i}`);
    else assert.equal(usage, null, `stream ${i} did not ask for usage`);
    return true;
  }));
  assert.equal(results.length, 40);
});

test('a buffered answer over server.max_response_bytes is a 502; a long stream is not capped', async () => {
  const c = capped.client(KEY);
  const input = Array.from({ length: 300 }, (_, i) => `sentence number ${i}`);
  const e = await lib.sdkError(() => c.embeddings.create({ model: 'emb', input, dimensions: 1024, encoding_format: 'float' }), 502);
  assert.equal(e.code, 'upstream_too_large');
  assert.match(e.message, /long/);
  // a small one still passes
  const ok = await c.embeddings.create({ model: 'emb', input: 'small', encoding_format: 'float' });
  assert.equal(ok.data.length, 1);
  // streams are relayed event by event, so their total size is not capped
  const s = await c.chat.completions.create({ model: 'long', messages: PROMPT, stream: true });
  let n = 0;
  for await (const ch of s) n += ch.choices[0]?.delta?.content ? 1 : 0;
  assert.equal(n, LONG);
});
