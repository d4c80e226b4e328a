// The server's limits: head size and header count (431), a slow body (408),
// the keep-alive idle timeout, and max_connections (503), each answered in
// OpenAI's error shape, with the gateway serving again right after.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-limits';
const REQUEST_TIMEOUT_MS = 400;
const IDLE_TIMEOUT_MS = 500;
const MAX_CONNECTIONS = 3;
let sim, gw;

before(async () => {
  sim = await lib.startSim({ seed: 9 });
  gw = await lib.startGateway({
    server: { max_header_bytes: 4096, request_timeout_ms: REQUEST_TIMEOUT_MS, idle_timeout_ms: IDLE_TIMEOUT_MS,
              max_connections: MAX_CONNECTIONS },
    providers: [lib.simProvider('s', sim)],
    offerings: [{ id: 's/fast', provider: 's', model: 'sim-fast' }],
    models: [{ name: 'fast', offerings: ['s/fast'] }],
    keys: lib.keyEntries({ l: KEY }),
  }, { workers: 1 }); // max_connections counts the whole process; one worker keeps it simple
});
after(lib.stopAll);

// Every request here goes on its own connection, closed after it, so that
// no pooled keep-alive connection counts against max_connections.
async function stillServes() {
  const { r, c } = await once(lib.httpRequest('POST', '/v1/chat/completions', {
    body: { ...lib.chat('fast'), max_tokens: 1 }, headers: { Authorization: `Bearer ${KEY}`, Connection: 'close' },
  }));
  assert.equal(r.status, 200, r.text);
  await c.closed();
  c.destroy();
}

/** tollgate_open_connections, this request's own connection included. */
async function openConnections() {
  const { r, c } = await once(lib.httpRequest('GET', '/metrics', { headers: { Connection: 'close' } }));
  c.destroy();
  return Number(r.text.match(/^tollgate_open_connections (\d+)$/m)[1]);
}

async function once(req, opts) {
  const c = await lib.Raw.connect(gw.port);
  try {
    await c.write(req);
    const r = await c.response(opts);
    return { r, c };
  } catch (e) {
    c.destroy();
    throw e;
  }
}

test('a head over max_header_bytes: 431', async () => {
  const { r, c } = await once(lib.httpRequest('GET', '/healthz', { headers: { 'X-Big': 'a'.repeat(5000) } }));
  assert.equal(r.status, 431, r.text);
  lib.assertErrorShape(r.json());
  await c.closed({ timeout: lib.ms(2000) });
  c.destroy();
  await stillServes();
});

test('more than 64 headers: 431', async () => {
  const headers = Object.fromEntries(Array.from({ length: 70 }, (_, i) => [`X-H${i}`, 'v']));
  const { r, c } = await once(lib.httpRequest('GET', '/healthz', { headers }));
  assert.equal(r.status, 431, r.text);
  lib.assertErrorShape(r.json());
  c.destroy();
  await stillServes();
});

test('a body that stalls: 408 after request_timeout_ms', async () => {
  const t0 = Date.now();
  const { r, c } = await once(['POST /v1/chat/completions HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`,
                               'Content-Length: 100', '', '{"mod'].join('\r\n'), { timeout: lib.ms(3000) });
  const took = Date.now() - t0;
  assert.equal(r.status, 408, r.text);
  lib.assertErrorShape(r.json());
  assert.ok(took >= REQUEST_TIMEOUT_MS - 50 && took < REQUEST_TIMEOUT_MS + lib.ms(1000), `408 after ${took} ms`);
  await c.closed({ timeout: lib.ms(2000) });
  c.destroy();
  await stillServes();
});

test('an idle keep-alive connection is closed after idle_timeout_ms', async () => {
  const { r, c } = await once(lib.httpRequest('GET', '/healthz'));
  assert.equal(r.status, 200);
  const t0 = Date.now();
  await c.closed({ timeout: IDLE_TIMEOUT_MS + lib.ms(2000) });
  const took = Date.now() - t0;
  assert.ok(took >= IDLE_TIMEOUT_MS - 100, `closed after ${took} ms`);
  c.destroy();
});

test('connections past max_connections get 503, and room comes back when they close', async () => {
  await lib.until(async () => (await openConnections()) === 1, { what: 'no other open connection' });
  const conns = [];
  for (let i = 0; i < MAX_CONNECTIONS + 2; i++) conns.push(await lib.Raw.connect(gw.port));
  try {
    const statuses = [];
    for (const c of conns) {
      await c.write(lib.httpRequest('GET', '/healthz'));
      const r = await c.response();
      statuses.push(r.status);
      if (r.status === 503) lib.assertErrorShape(r.json());
    }
    assert.deepEqual(statuses, [200, 200, 200, 503, 503]);
  } finally {
    for (const c of conns) c.destroy();
  }
  await lib.until(async () => (await openConnections()) === 1, { what: 'the connections to be counted as closed' });
  await stillServes();
});
