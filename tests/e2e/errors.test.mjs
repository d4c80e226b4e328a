// Errors: each failure answers with the right status and an OpenAI-shaped
// body, and a successful request right after proves the gateway still
// serves. Upstream failures are injected with the sim's X-Sim-Fault header.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-errors';
const FIRST_BYTE_MS = 500;
const HEADER_TIMEOUT_MS = 500;
const MAX_BODY = 65536;
let sim, gw, client;

before(async () => {
  sim = await lib.startSim({ seed: 3 });
  gw = await lib.startGateway({
    server: { max_body_bytes: MAX_BODY, header_timeout_ms: HEADER_TIMEOUT_MS },
    providers: [lib.simProvider('flaky', sim, { first_byte_timeout_ms: lib.ms(FIRST_BYTE_MS) })],
    offerings: [
      { id: 'flaky/fast', provider: 'flaky', model: 'sim-fast' },
      { id: 'flaky/emb', provider: 'flaky', model: 'text-embedding-3-small' },
    ],
    models: [
      { name: 'fast', offerings: ['flaky/fast'] },
      { name: 'emb', offerings: ['flaky/emb'] },
    ],
    // one call per request and no breaker: these tests map each failure of a
    // single call to its answer (tests/e2e/routing.test.mjs has the retries)
    routing: { attempts: 1, breaker: { failures: 1000 } },
    keys: lib.keyEntries({ e: KEY }),
  });
  client = gw.client(KEY);
});
after(lib.stopAll);

const fault = (kind) => ({ headers: { 'X-Sim-Fault': kind } });

/** A request that must succeed after an error. */
async function stillServes() {
  const r = await client.chat.completions.create({ ...lib.chat('fast'), max_tokens: 3 });
  assert.equal(r.usage.completion_tokens, 3);
}

/** The error of a raw POST, its body checked for OpenAI's shape. */
async function rawError(body, status, { code, headers = {}, key = KEY } = {}) {
  const r = await gw.post('/v1/chat/completions', body, { key, headers });
  const text = await r.text();
  assert.equal(r.status, status, text);
  assert.match(r.headers.get('content-type') ?? '', /application\/json/);
  assert.ok(r.headers.get('x-request-id'), 'errors carry X-Request-Id too');
  return lib.assertErrorShape(JSON.parse(text), { code });
}

describe('client errors', () => {
  test('unknown model: 404 model_not_found', async () => {
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('gpt-nonexistent')), 404);
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    assert.equal(e.param, 'model');
    assert.match(e.message, /gpt-nonexistent/);
    const body = await rawError(lib.chat('gpt-nonexistent'), 404, { code: 'model_not_found' });
    assert.equal(body.type, 'invalid_request_error');
    await lib.sdkError(() => client.embeddings.create({ model: 'nope', input: 'x' }), 404);
    await stillServes();
  });

  test('malformed JSON: 400 on the wire', async () => {
    for (const body of ['{"model":"fast","messages":[', 'not json at all', '[1,2,3]', '{"model":42}', '']) {
      const c = await lib.Raw.connect(gw.port);
      await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
        body, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
      }));
      const r = await c.response();
      assert.equal(r.status, 400, `body ${JSON.stringify(body)}: ${r.text}`);
      const e = lib.assertErrorShape(r.json());
      assert.equal(e.type, 'invalid_request_error');
      c.destroy();
    }
    const e = await lib.sdkError(() => client.chat.completions.create({ model: 'fast', messages: [], stream: 'yes' }), 400);
    assert.ok(e instanceof OpenAI.BadRequestError);
    await stillServes();
  });

  test('a duplicate top-level model cannot smuggle a second model past the key check', async () => {
    // a parser that takes the first "model" and a provider that takes the last
    // would route one model and serve another
    const body = '{"model":"fast","messages":[{"role":"user","content":"hi"}],"model":"emb"}';
    const r = await gw.post('/v1/chat/completions', body, { key: KEY });
    assert.equal(r.status, 400);
    lib.assertErrorShape(await r.json());
    await stillServes();
  });

  test('body over server.max_body_bytes: 413', async () => {
    const big = lib.chat('fast', 'x'.repeat(MAX_BODY + 100));
    // the head says it is too big: answered before the body is read
    const c = await lib.Raw.connect(gw.port);
    const req = lib.httpRequest('POST', '/v1/chat/completions', {
      body: big, headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' },
    });
    const headEnd = req.indexOf('\r\n\r\n') + 4;
    await c.write(req.subarray(0, headEnd));
    const r = await c.response();
    assert.equal(r.status, 413, r.text);
    lib.assertErrorShape(r.json());
    await c.closed({ timeout: lib.ms(2000) });
    c.destroy();
    // a chunked body has no length up front: refused once it passes the cap
    const c2 = await lib.Raw.connect(gw.port);
    await c2.write(['POST /v1/chat/completions HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`,
                    'Transfer-Encoding: chunked', '', ''].join('\r\n'));
    const payload = Buffer.from(JSON.stringify(big));
    for (let off = 0; off < payload.length && !c2.ended; off += 16384) {
      const part = payload.subarray(off, off + 16384);
      await c2.write(Buffer.concat([Buffer.from(part.length.toString(16) + '\r\n'), part, Buffer.from('\r\n')]));
    }
    const r2 = await c2.response();
    assert.equal(r2.status, 413, r2.text);
    lib.assertErrorShape(r2.json());
    c2.destroy();
    await stillServes();
  });

  test('body over the limit, sent whole by the SDK: 413', async () => {
    // A client that writes the whole body before reading must still get
    // the 413, not a reset that loses it.
    const e = await lib.sdkError(
      () => client.chat.completions.create(lib.chat('fast', 'y'.repeat(4 * MAX_BODY))), 413);
    assert.equal(e.error?.type !== undefined, true, `an OpenAI-shaped body: ${e.message}`);
    await stillServes();
  });

  test('slow-loris head: 408 and close within header_timeout_ms', async () => {
    const c = await lib.Raw.connect(gw.port);
    const head = Buffer.from(['POST /v1/chat/completions HTTP/1.1', 'Host: 127.0.0.1',
                              `Authorization: Bearer ${KEY}`, 'Content-Type: application/json',
                              'Content-Length: 2', '', '{}'].join('\r\n'));
    const t0 = Date.now();
    let sent = 0;
    let stop = false;
    const dribble = (async () => {
      // one byte every 100 ms: the whole head would take seconds
      for (; sent < head.length && !stop && !c.ended; sent++) {
        if (!(await c.write(head.subarray(sent, sent + 1)))) break;
        await lib.sleep(100);
      }
    })();
    let r;
    try {
      r = await c.response({ timeout: HEADER_TIMEOUT_MS + lib.ms(3000) });
    } finally {
      stop = true;
    }
    const elapsed = Date.now() - t0;
    assert.equal(r.status, 408, r.text);
    lib.assertErrorShape(r.json());
    await c.closed({ timeout: lib.ms(2000) });
    await dribble;
    assert.ok(sent < head.length, 'the head never completed');
    assert.ok(elapsed >= HEADER_TIMEOUT_MS - 50, `408 after ${elapsed} ms`);
    assert.ok(elapsed <= HEADER_TIMEOUT_MS + lib.ms(1000), `408 after ${elapsed} ms`);
    c.destroy();
    await stillServes();
  });

  test('unknown path 404 and wrong method 405, OpenAI-shaped', async () => {
    const r = await gw.fetch('/v1/nothing-here', { headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(r.status, 404);
    lib.assertErrorShape(await r.json());
    const r2 = await gw.fetch('/v1/chat/completions', { headers: { Authorization: `Bearer ${KEY}` } });
    assert.equal(r2.status, 405);
    lib.assertErrorShape(await r2.json());
    await stillServes();
  });
});

describe('upstream failures', () => {
  test('upstream 500: 502 naming the provider', async () => {
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('fast'), fault('500')), 502);
    assert.ok(e instanceof OpenAI.InternalServerError);
    assert.match(e.message, /flaky/);
    const body = await rawError(lib.chat('fast'), 502, { headers: { 'X-Sim-Fault': '500' } });
    assert.match(body.message, /provider flaky/);
    // a stream that fails before its first event gets a plain 502 too
    await lib.sdkError(() => client.chat.completions.create({ ...lib.chat('fast'), stream: true }, fault('500')), 502);
    await rawError(lib.chat('fast'), 502, { headers: { 'X-Sim-Fault': '503' } });
    await stillServes();
  });

  test('upstream 429: passed through with Retry-After', async () => {
    const r = await gw.post('/v1/chat/completions', lib.chat('fast'), { key: KEY, headers: { 'X-Sim-Fault': '429' } });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    lib.assertErrorShape(await r.json());
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('fast'), fault('429')), 429);
    assert.ok(e instanceof OpenAI.RateLimitError);
    await stillServes();
  });

  test('upstream timeout: 504 after first_byte_timeout_ms', async () => {
    const t0 = Date.now();
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('fast'), fault('timeout')), 504);
    const elapsed = Date.now() - t0;
    assert.match(e.message, /flaky/);
    assert.equal(e.code, 'upstream_timeout');
    assert.ok(elapsed >= lib.ms(FIRST_BYTE_MS) - 50, `504 after ${elapsed} ms`);
    assert.ok(elapsed < lib.ms(FIRST_BYTE_MS) + lib.ms(2000), `504 after ${elapsed} ms`);
    const es = await lib.sdkError(() => client.chat.completions.create({ ...lib.chat('fast'), stream: true }, fault('timeout')), 504);
    assert.equal(es.code, 'upstream_timeout');
    await stillServes();
  });

  test('upstream reset: 502', async () => {
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('fast'), fault('reset')), 502);
    assert.match(e.message, /flaky/);
    await rawError(lib.chat('fast'), 502, { headers: { 'X-Sim-Fault': 'reset' } });
    await lib.sdkError(() => client.embeddings.create({ model: 'emb', input: 'x' }, fault('reset')), 502);
    await stillServes();
  });

  test('upstream malformed JSON: 502', async () => {
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('fast'), fault('malformed')), 502);
    assert.equal(e.code, 'upstream_malformed');
    assert.match(e.message, /flaky/);
    await rawError(lib.chat('fast'), 502, { code: 'upstream_malformed', headers: { 'X-Sim-Fault': 'malformed' } });
    await stillServes();
  });

  test('malformed stream event: the stream ends with an error event', async () => {
    const stream = await client.chat.completions.create({ ...lib.chat('fast'), stream: true }, fault('malformed'));
    const err = await (async () => {
      try {
        for await (const c of stream) void c;
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err, 'iterating the stream throws');
    assert.match(err.message, /flaky/);
    await stillServes();
  });

  test('buffered answer cut short: 502', async () => {
    const e = await lib.sdkError(() => client.chat.completions.create(lib.chat('fast'), fault('cut')), 502);
    assert.match(e.message, /flaky/);
    await stillServes();
  });

  test('stream cut mid-way: the SDK throws, and what came is a prefix', async () => {
    const body = { ...lib.chat('fast', 'Tell me a long story'), max_tokens: 40 };
    const full = (await client.chat.completions.create(body)).choices[0].message.content;
    const stream = await client.chat.completions.create({ ...body, stream: true }, fault('cut'));
    let text = '';
    let chunks = 0;
    const err = await (async () => {
      try {
        for await (const c of stream) {
          chunks++;
          text += c.choices[0]?.delta?.content ?? '';
        }
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err, 'iterating the stream throws');
    assert.ok(err instanceof OpenAI.APIError, `an APIError from the error event, got ${err}`);
    assert.match(err.message, /flaky/);
    assert.ok(chunks > 1, 'some chunks came first');
    assert.ok(text.length > 0 && text.length < full.length, `partial text: ${text.length} of ${full.length}`);
    assert.ok(full.startsWith(text), 'the partial text is a prefix of the whole');

    // on the wire: an error event and no [DONE]
    const r = await gw.post('/v1/chat/completions', { ...body, stream: true }, { key: KEY, headers: { 'X-Sim-Fault': 'cut' } });
    assert.equal(r.status, 200);
    const events = lib.sseData(await r.text());
    assert.ok(!events.includes('[DONE]'));
    const last = JSON.parse(events.at(-1));
    lib.assertErrorShape(last);
    await stillServes();
  });

  test('every failure was counted and logged', async () => {
    const m = await gw.metrics();
    assert.match(m, /tollgate_upstream_errors_total\{provider="flaky",kind="[a-z_0-9]+"\} [1-9]/);
    assert.match(m, /tollgate_requests_total\{model="fast",status="502"\} [1-9]/);
    assert.match(m, /tollgate_requests_total\{model="fast",status="504"\} [1-9]/);
  });
});
