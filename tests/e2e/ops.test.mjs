// Operations: /healthz, /metrics, the access log, SIGHUP reloads (good and
// bad), and SIGTERM draining an in-flight stream.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

const KEY1 = 'sk-e2e-ops-one';
const KEY2 = 'sk-e2e-ops-two';
const KEY3 = 'sk-e2e-ops-three';
let fast, slow, gw;

const baseConfig = (keys) => ({
  providers: [lib.simProvider('simops', fast), lib.simProvider('simslow', slow)],
  offerings: [
    { id: 'simops/fast', provider: 'simops', model: 'sim-fast' },
    { id: 'simslow/slow', provider: 'simslow', model: 'sim-fast' },
  ],
  models: [
    { name: 'fast', offerings: ['simops/fast'] },
    { name: 'slow', offerings: ['simslow/slow'] },
  ],
  keys: lib.keyEntries(keys),
});

before(async () => {
  fast = await lib.startSim({ seed: 9 });
  slow = await lib.startSim({ seed: 9, ttftMs: 100, tps: 20 });
  // one worker: every connection lands on the same loop
  gw = await lib.startGateway(baseConfig({ one: KEY1 }), { workers: 1 });
});
after(lib.stopAll);

const ok = async (key, model = 'fast') => {
  const r = await gw.post('/v1/chat/completions', { ...lib.chat(model), max_tokens: 2 }, { key });
  return r.status;
};

describe('health and metrics', () => {
  test('/healthz answers without a key', async () => {
    const r = await gw.fetch('/healthz');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), { status: 'ok' });
    assert.ok(r.headers.get('x-request-id'));
  });

  test('/metrics counts requests by model and status, with a latency histogram', async () => {
    const c = gw.client(KEY1);
    for (let i = 0; i < 3; i++) await c.chat.completions.create({ ...lib.chat('fast'), max_tokens: 2 });
    await lib.sdkError(() => c.chat.completions.create(lib.chat('no-such-model')), 404);
    // samples are taken when each request ends, just after its last byte
    const m = await lib.until(async () => {
      const text = await gw.metrics();
      return /tollgate_requests_total\{model="fast",status="200"\} 3\n/.test(text) &&
             /tollgate_requests_total\{model="unknown",status="404"\} 1\n/.test(text) && text;
    }, { what: 'the request counters' });
    assert.match(m, /# TYPE tollgate_requests_total counter/);
    assert.match(m, /^tollgate_open_connections [1-9]\d*$/m);
    assert.match(m, /# TYPE tollgate_request_duration_seconds histogram/);
    const buckets = [...m.matchAll(/^tollgate_request_duration_seconds_bucket\{model="fast",le="([^"]+)"\} (\d+)$/gm)];
    assert.ok(buckets.length >= 5, 'several buckets');
    const counts = buckets.map((b) => Number(b[2]));
    assert.deepEqual([...counts].sort((a, b) => a - b), counts, 'buckets are cumulative');
    assert.equal(buckets.at(-1)[1], '+Inf');
    assert.equal(counts.at(-1), 3);
    assert.match(m, /^tollgate_request_duration_seconds_count\{model="fast"\} 3$/m);
    assert.match(m, /^tollgate_request_duration_seconds_sum\{model="fast"\} \d+\.\d+$/m);
    // every sample line is "name{labels} number"
    for (const line of m.split('\n').filter((l) => l && !l.startsWith('#')))
      assert.match(line, /^[a-z_]+(\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\})? [0-9.e+-]+$/, line);
  });
});

describe('access log', () => {
  test('a request\'s line is written when it ends, not at the worker\'s next event', async () => {
    // Keep-alive connection left open and idle afterwards: nothing else
    // happens on the worker, so a line held back for a later loop turn
    // would not come until the idle timeout.
    // Whether a line is held back depends on the loop phase the request
    // ends in, so try a few buffered and streamed requests.
    const c = await lib.Raw.connect(gw.port);
    try {
      for (let i = 0; i < 16; i++) {
        const rid = `prompt-log-${i}`;
        await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
          body: { ...lib.chat('fast'), max_tokens: 2, stream: i % 2 === 1 },
          headers: { Authorization: `Bearer ${KEY1}`, 'X-Request-Id': rid },
        }));
        const r = await c.response();
        assert.equal(r.status, 200);
        await gw.requestLog(rid, { timeout: lib.ms(1000) });
      }
    } finally {
      c.destroy();
    }
  });

  test('one line per request with every field', async () => {
    const res = await gw.post('/v1/chat/completions', { ...lib.chat('fast'), max_tokens: 3 },
                              { key: KEY1, headers: { 'X-Request-Id': 'log-ok-1' } });
    const body = await res.json();
    const bad = await gw.post('/v1/chat/completions', lib.chat('nope'), { key: KEY1, headers: { 'X-Request-Id': 'log-404-1' } });
    assert.equal(bad.status, 404);
    await bad.text();
    // another connection wakes the (single) worker, should a line be held back
    await gw.fetch('/healthz', { headers: { Connection: 'close' } });
    const line = await gw.requestLog('log-ok-1', { timeout: lib.ms(10000) });
    for (const f of ['ts', 'level', 'rid', 'key', 'endpoint', 'model', 'provider', 'offering', 'stream', 'status',
                     'upstream_status', 'bytes_in', 'bytes_out', 'latency_us', 'ttfb_us', 'prompt_tokens',
                     'completion_tokens'])
      assert.ok(f in line, `field ${f} in ${JSON.stringify(line)}`);
    assert.equal(line.key, 'one');
    assert.equal(line.endpoint, 'chat');
    assert.equal(line.model, 'fast');
    assert.equal(line.provider, 'simops');
    assert.equal(line.offering, 'simops/fast');
    assert.equal(line.stream, false);
    assert.equal(line.status, 200);
    assert.equal(line.upstream_status, 200);
    assert.equal(line.prompt_tokens, body.usage.prompt_tokens);
    assert.equal(line.completion_tokens, 3);
    assert.ok(line.bytes_in > 0 && line.bytes_out > JSON.stringify(body).length - 1);
    assert.ok(line.latency_us > 0 && line.ttfb_us > 0 && line.ttfb_us <= line.latency_us);
    const e = await gw.requestLog('log-404-1', { timeout: lib.ms(10000) });
    assert.equal(e.status, 404);
    assert.equal(e.error, 'model_not_found');
    assert.equal(e.key, 'one');
    assert.equal(gw.proc.requests().filter((l) => l.rid === 'log-ok-1').length, 1, 'exactly one line');
  });
});

describe('SIGHUP', () => {
  test('a new key works after a reload', async () => {
    assert.equal(await ok(KEY2), 401);
    gw.writeConfig(baseConfig({ one: KEY1, two: KEY2 }));
    const line = await gw.reload();
    assert.match(line, /configuration reloaded/);
    assert.equal(await ok(KEY2), 200);
    assert.equal(await ok(KEY1), 200);
  });

  test('a bad configuration is refused, logged with file:line, and the old one keeps serving', async () => {
    const good = gw.yaml(baseConfig({ one: KEY1, two: KEY2, three: KEY3 })).split('\n');
    const at = good.indexOf('server:');
    assert.ok(at >= 0);
    const lines = [...good.slice(0, at + 1), '  no_such_setting: 1', ...good.slice(at + 1)];
    const badLine = at + 2; // 1-based line of the inserted field
    gw.writeConfig(lines.join('\n'));
    const line = await gw.reload();
    assert.match(line, /reload refused/);
    const msg = JSON.parse(line).msg;
    assert.ok(msg.includes(`${gw.configPath}:${badLine}:`), `names file:line (${badLine}): ${msg}`);
    assert.match(msg, /no_such_setting/);
    assert.equal(JSON.parse(line).level, 'error');
    // the previous configuration still serves: both its keys, not the new one
    assert.equal(await ok(KEY1), 200);
    assert.equal(await ok(KEY2), 200);
    assert.equal(await ok(KEY3), 401);
    const m = await gw.metrics();
    assert.match(m, /tollgate_config_reloads_total\{result="ok"\} 1\n/);
    assert.match(m, /tollgate_config_reloads_total\{result="failed"\} 1\n/);
    // a later good file is taken again
    gw.writeConfig(baseConfig({ three: KEY3 }));
    assert.match(await gw.reload(), /configuration reloaded/);
    assert.equal(await ok(KEY3), 200);
    assert.equal(await ok(KEY1), 401);
  });
});

describe('SIGHUP with requests in flight', () => {
  test('streams started before a reload finish on the configuration they started with', async () => {
    const g = await lib.startGateway(baseConfig({ one: KEY1 }), { workers: 2 });
    const conns = await Promise.all([0, 1, 2, 3].map(async (i) => {
      const c = await lib.Raw.connect(g.port);
      await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
        body: { ...lib.chat('slow', `stream ${i}`), max_tokens: 20, stream: true },
        headers: { Authorization: `Bearer ${KEY1}`, 'Content-Type': 'application/json' },
      }));
      await c.wait((x) => x.buf.includes('"content":"'), { what: 'the first token' });
      return c;
    }));
    // the new file drops the key, the model and the provider those streams use
    g.writeConfig({
      providers: [lib.simProvider('elsewhere', fast)],
      offerings: [{ id: 'elsewhere/p', provider: 'elsewhere', model: 'sim-premium' }],
      models: [{ name: 'other', offerings: ['elsewhere/p'] }],
      keys: lib.keyEntries({ two: KEY2 }),
    });
    assert.match(await g.reload(), /configuration reloaded/);
    for (const c of conns) {
      const r = await c.response({ timeout: lib.ms(10000) });
      assert.equal(r.status, 200);
      assert.equal(lib.sseData(r.text).at(-1), '[DONE]');
      c.destroy();
    }
    const r = await g.post('/v1/chat/completions', lib.chat('slow'), { key: KEY1 });
    assert.equal(r.status, 401, 'new requests see the new keys');
    const r2 = await g.post('/v1/chat/completions', { ...lib.chat('other'), max_tokens: 1 }, { key: KEY2 });
    assert.equal(r2.status, 200);
  });
});

describe('SIGTERM', () => {
  test('drains an in-flight stream to [DONE], refuses new connections, exits 0', async () => {
    const term = await lib.startGateway(baseConfig({ one: KEY1 }), { workers: 2 });
    const c = await lib.Raw.connect(term.port);
    // 30 tokens at 20 per second: about 1.6 s in flight
    await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
      body: { ...lib.chat('slow'), max_tokens: 30, stream: true },
      headers: { Authorization: `Bearer ${KEY1}`, 'Content-Type': 'application/json' },
    }));
    await c.wait((s) => s.buf.includes('"content":"'), { what: 'the first token' });
    const from = term.proc.lines.length;
    term.proc.signal('SIGTERM');
    await term.proc.waitLine(/draining/, { from });
    const refused = await lib.until(async () => (await lib.probeConnect(term.port)) === 'refused',
                                    { what: 'new connections to be refused', timeout: lib.ms(3000) });
    assert.ok(refused);
    assert.ok(!c.ended, 'the stream was still in flight while new connections were refused');
    const r = await c.response({ timeout: lib.ms(10000) });
    assert.equal(r.status, 200);
    const events = lib.sseData(r.text);
    assert.equal(events.at(-1), '[DONE]', 'the stream completed');
    const text = events.slice(0, -1).map((e) => JSON.parse(e).choices[0]?.delta?.content ?? '').join('');
    // the fast sim has the same seed: the same words, at once
    const ref = await fast.client().chat.completions.create({ ...lib.chat('sim-fast'), max_tokens: 30 });
    assert.equal(text, ref.choices[0].message.content);
    await c.closed({ timeout: lib.ms(3000) });
    const exit = await lib.within(term.proc.exited, lib.ms(10000), 'the gateway exit');
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(await lib.probeConnect(term.port), 'refused');
    assert.deepEqual(term.proc.sanitizerReport(), []);
  });

  test('a stream longer than shutdown_timeout_ms is cut at the deadline, and the process exits 0', async () => {
    const cfg = baseConfig({ one: KEY1 });
    const term = await lib.startGateway({ ...cfg, server: { shutdown_timeout_ms: 300 } }, { workers: 2 });
    const c = await lib.Raw.connect(term.port);
    // 100 tokens at 20 per second: 5 s, far past the 300 ms deadline
    await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
      body: { ...lib.chat('slow'), max_tokens: 100, stream: true },
      headers: { Authorization: `Bearer ${KEY1}`, 'Content-Type': 'application/json' },
    }));
    await c.wait((s) => s.buf.includes('"content":"'), { what: 'the first token' });
    const t0 = Date.now();
    term.proc.signal('SIGTERM');
    const exit = await lib.within(term.proc.exited, lib.ms(5000), 'the gateway exit');
    const took = Date.now() - t0;
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(took >= 250 && took < lib.ms(3000), `exited ${took} ms after SIGTERM`);
    await c.closed({ timeout: lib.ms(2000) });
    assert.ok(!c.buf.includes('[DONE]'), 'the stream was cut, not finished');
    assert.deepEqual(term.proc.sanitizerReport(), []);
    c.destroy();
  });
});
