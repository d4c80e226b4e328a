// A client that goes away mid-stream cancels the upstream transfer: the sim
// records how many tokens it sent when its client (the gateway) left, so a
// gateway that kept reading would show the whole answer there.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-cancel';
const MAX = 200; // at 10 tokens per second: 20 s if nobody cancels
let sim, gw;

before(async () => {
  sim = await lib.startSim({ seed: 13, ttftMs: 50, tps: 10 });
  gw = await lib.startGateway({
    providers: [lib.simProvider('slowsim', sim)],
    offerings: [
      { id: 'slowsim/a', provider: 'slowsim', model: 'sim-cancel-sdk' },
      { id: 'slowsim/b', provider: 'slowsim', model: 'sim-cancel-raw' },
      { id: 'slowsim/c', provider: 'slowsim', model: 'sim-cancel-buffered' },
    ],
    models: [
      { name: 'cancel-sdk', offerings: ['slowsim/a'] },
      { name: 'cancel-raw', offerings: ['slowsim/b'] },
      { name: 'cancel-buffered', offerings: ['slowsim/c'] },
    ],
    keys: lib.keyEntries({ c: KEY }),
  }, { workers: 1 });
});
after(lib.stopAll);

/** Waits until the sim has recorded the request to model (it records a
 * stream when it ends or its client leaves), then until the count stays
 * put; returns the model's stats. */
async function settled(model) {
  const first = await lib.until(async () => {
    const m = await sim.model(model);
    return m.requests === 1 && m;
  }, { timeout: lib.ms(5000), interval: 50, what: `the sim to record the ${model} request as ended` });
  await lib.sleep(300);
  const again = await sim.model(model);
  assert.equal(again.completion_tokens, first.completion_tokens, 'the count stopped growing');
  return again;
}

test('SDK abort after the first chunk cancels the upstream stream', async () => {
  const client = gw.client(KEY);
  const { data: stream, response } = await client.chat.completions.create({
    ...lib.chat('cancel-sdk', 'Write a very long essay'), max_tokens: MAX, stream: true,
  }).withResponse();
  let chunks = 0;
  for await (const c of stream) {
    if (c.choices[0]?.delta?.content) chunks++;
    if (chunks >= 1) break; // breaking out of the loop aborts the request
  }
  const m = await settled('sim-cancel-sdk');
  assert.equal(m.streams, 1);
  assert.ok(m.completion_tokens >= 1, 'the sim had sent something');
  assert.ok(m.completion_tokens < 30, `the sim sent ${m.completion_tokens} of ${MAX} tokens`);
  await gw.fetch('/healthz'); // wakes the (single) worker, should a log line wait for it
  const line = await gw.requestLog(response.headers.get('x-request-id'), { timeout: lib.ms(5000) });
  assert.equal(line.status, 499, 'logged as closed by the client');
});

test('a client socket closed mid-stream cancels the upstream stream', async () => {
  const c = await lib.Raw.connect(gw.port);
  await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
    body: { ...lib.chat('cancel-raw', 'Write a very long essay'), max_tokens: MAX, stream: true },
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
  }));
  await c.wait((s) => s.buf.includes('"content":"'), { what: 'the first token' });
  c.destroy();
  const m = await settled('sim-cancel-raw');
  assert.ok(m.completion_tokens < 30, `the sim sent ${m.completion_tokens} of ${MAX} tokens`);
});

test('a client gone while a buffered answer is pending cancels the upstream call', async () => {
  // buffered: the sim answers after ttft + 200 tokens at 10/s = 20 s
  const c = await lib.Raw.connect(gw.port);
  await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
    body: { ...lib.chat('cancel-buffered', 'Write a very long essay'), max_tokens: MAX },
    headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
  }));
  await lib.sleep(200); // the call is upstream by now
  c.destroy();
  const m = await settled('sim-cancel-buffered');
  assert.equal(m.completion_tokens, 0, 'the sim billed nothing of an answer never sent');
  // and the gateway is fine
  const ok = await gw.client(KEY).chat.completions.create({ ...lib.chat('cancel-buffered'), max_tokens: 1 });
  assert.equal(ok.usage.completion_tokens, 1);
});
