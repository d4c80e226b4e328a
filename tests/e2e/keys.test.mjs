// Keys: the client's key at the gateway (missing, wrong, either header) and
// the provider's key from api_key_env, which must reach the provider and
// never show up in the gateway's output or in anything a client receives.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as lib from './lib.mjs';

const CLIENT_KEY = 'sk-e2e-client-4d1f0a77c2';
const PROVIDER_KEY = 'sk-provider-SECRET-7f3a9c5e21';
const WRONG_KEY = 'sk-provider-WRONG-9b8e3d4410';
const env = { TG_E2E_SIM_KEY: PROVIDER_KEY, TG_E2E_WRONG_KEY: WRONG_KEY };

let sim, gw;
const seen = []; // every response header and body the clients received
const pending = [];

/** A fetch for the SDK that keeps a copy of every response. */
async function recordingFetch(url, init) {
  const r = await fetch(url, init);
  for (const [k, v] of r.headers) seen.push(`${k}: ${v}`);
  pending.push(r.clone().text().then((t) => seen.push(t), (e) => seen.push(String(e))));
  return r;
}

async function recorded(p) {
  const r = await p;
  for (const [k, v] of r.headers) seen.push(`${k}: ${v}`);
  const text = await r.text();
  seen.push(text);
  return { status: r.status, text, json: () => JSON.parse(text), headers: r.headers };
}

before(async () => {
  sim = await lib.startSim({ keyEnv: 'TG_E2E_SIM_KEY', env });
  gw = await lib.startGateway({
    log: { level: 'debug' }, // the most the gateway ever says
    providers: [
      lib.simProvider('simkeyed', sim, { api_key_env: 'TG_E2E_SIM_KEY' }),
      lib.simProvider('simwrong', sim, { api_key_env: 'TG_E2E_WRONG_KEY' }),
    ],
    offerings: [
      { id: 'simkeyed/fast', provider: 'simkeyed', model: 'sim-fast' },
      { id: 'simkeyed/emb', provider: 'simkeyed', model: 'text-embedding-3-small' },
      { id: 'simwrong/fast', provider: 'simwrong', model: 'sim-fast' },
    ],
    models: [
      { name: 'fast', offerings: ['simkeyed/fast'] },
      { name: 'emb', offerings: ['simkeyed/emb'] },
      { name: 'wrongkey', offerings: ['simwrong/fast'] },
    ],
    keys: lib.keyEntries({ app: CLIENT_KEY }),
  }, { env });
});
after(lib.stopAll);

const client = () => gw.client(CLIENT_KEY, { fetch: recordingFetch });

test('a missing key is refused with 401', async () => {
  for (const headers of [{}, { Authorization: 'Bearer ' }, { Authorization: 'Basic Zm9vOmJhcg==' }, { 'api-key': '' }]) {
    const r = await recorded(gw.post('/v1/chat/completions', lib.chat('fast'), { headers }));
    assert.equal(r.status, 401, `headers ${JSON.stringify(headers)}`);
    lib.assertErrorShape(r.json(), { code: 'invalid_api_key' });
  }
  const m = await recorded(gw.fetch('/v1/models'));
  assert.equal(m.status, 401);
  lib.assertErrorShape(m.json(), { code: 'invalid_api_key' });
});

test('a wrong key is refused with 401 (the SDK\'s AuthenticationError)', async () => {
  const bad = gw.client('sk-e2e-not-a-key', { fetch: recordingFetch });
  const e = await lib.sdkError(() => bad.chat.completions.create(lib.chat('fast')), 401);
  assert.ok(e instanceof OpenAI.AuthenticationError, `got ${e.constructor.name}`);
  assert.equal(e.code, 'invalid_api_key');
  await lib.sdkError(() => bad.models.list(), 401);
  // the provider key is not a client key either
  const r = await recorded(gw.post('/v1/chat/completions', lib.chat('fast'), { key: PROVIDER_KEY }));
  assert.equal(r.status, 401);
});

test('the key is accepted in an api-key header', async () => {
  const r = await recorded(gw.post('/v1/chat/completions', lib.chat('fast'), { headers: { 'api-key': CLIENT_KEY } }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().object, 'chat.completion');
  const m = await recorded(gw.fetch('/v1/models', { headers: { 'api-key': CLIENT_KEY } }));
  assert.equal(m.status, 200);
});

test('the provider key from api_key_env reaches the provider', async () => {
  // the sim refuses a call without its key...
  const direct = await fetch(`${sim.baseURL}/chat/completions`, {
    method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(lib.chat('sim-fast')),
  });
  assert.equal(direct.status, 401);
  // ...and serves the gateway, which sent it
  const before = await sim.stats();
  const c = client();
  const res = await c.chat.completions.create(lib.chat('fast'));
  assert.equal(res.object, 'chat.completion');
  const stream = await c.chat.completions.create({ ...lib.chat('fast'), stream: true });
  let text = '';
  for await (const ch of stream) text += ch.choices[0]?.delta?.content ?? '';
  assert.equal(text, res.choices[0].message.content);
  const emb = await c.embeddings.create({ model: 'emb', input: 'hello' });
  assert.equal(emb.data.length, 1);
  const after = await sim.stats();
  assert.equal(after.rejected - before.rejected, 0, 'the sim refused none of the gateway\'s calls');
  assert.equal(after.models['sim-fast'].requests - (before.models['sim-fast']?.requests ?? 0), 2);
});

test('a provider that refuses the gateway\'s key gives 502 naming the provider', async () => {
  const c = client();
  const e = await lib.sdkError(() => c.chat.completions.create(lib.chat('wrongkey')), 502);
  assert.equal(e.code, 'upstream_auth_failed');
  assert.match(e.message, /simwrong/);
  const es = await lib.sdkError(() => c.chat.completions.create({ ...lib.chat('wrongkey'), stream: true }), 502);
  assert.match(es.message, /simwrong/);
  const r = await recorded(gw.post('/v1/chat/completions', lib.chat('wrongkey'), { key: CLIENT_KEY }));
  assert.equal(r.status, 502);
  lib.assertErrorShape(r.json(), { code: 'upstream_auth_failed' });
  // and the gateway still serves
  assert.equal((await c.chat.completions.create(lib.chat('fast'))).object, 'chat.completion');
});

test('no key ever appears in gateway output or in responses', async () => {
  await Promise.all(pending);
  assert.ok(seen.length > 20, 'responses were recorded');
  for (const secret of [PROVIDER_KEY, WRONG_KEY, CLIENT_KEY]) {
    const inResponses = seen.filter((s) => s.includes(secret));
    assert.deepEqual(inResponses, [], `${secret.slice(0, 12)}... appeared in a response`);
    // the distinctive part alone, in case it was cut or quoted
    const part = secret.slice(-10);
    assert.deepEqual(seen.filter((s) => s.includes(part)), []);
  }
  await lib.until(() => gw.proc.requests().length > 0, { what: 'access log lines', timeout: lib.ms(10000) });
  // stop the gateway so that every line it will ever print is in
  await gw.proc.stop();
  const lines = gw.proc.text();
  assert.ok(lines.length > 3);
  for (const secret of [PROVIDER_KEY, WRONG_KEY, CLIENT_KEY]) {
    const leaked = lines.filter((l) => l.includes(secret) || l.includes(secret.slice(-10)));
    assert.deepEqual(leaked, [], `${secret.slice(0, 12)}... appeared in the gateway's output`);
  }
  // the logs name the key by its id
  assert.ok(gw.proc.requests().some((l) => l.key === 'app'));
});
