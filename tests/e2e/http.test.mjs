// HTTP/1.x on the wire, over raw sockets: keep-alive, pipelining, chunked
// request bodies, request ids, HTTP/1.0.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-http';
let sim, gw;

before(async () => {
  sim = await lib.startSim({ seed: 5 });
  gw = await lib.startGateway({
    providers: [lib.simProvider('sim', sim)],
    offerings: [{ id: 'sim/fast', provider: 'sim', model: 'sim-fast' }],
    models: [{ name: 'fast', offerings: ['sim/fast'] }],
    keys: lib.keyEntries({ h: KEY }),
  });
});
after(lib.stopAll);

const auth = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };
const chatReq = (extra = {}, headers = {}, version) =>
  lib.httpRequest('POST', '/v1/chat/completions', {
    body: { ...lib.chat('fast'), ...extra }, headers: { ...auth, ...headers }, version,
  });

test('keep-alive: two requests on one connection', async () => {
  const c = await lib.Raw.connect(gw.port);
  await c.write(chatReq({ max_tokens: 2 }));
  const r1 = await c.response();
  assert.equal(r1.status, 200, r1.text);
  assert.equal(r1.version, '1.1');
  assert.notEqual((r1.headers.connection ?? '').toLowerCase(), 'close');
  assert.equal(r1.json().usage.completion_tokens, 2);
  assert.ok(!c.ended, 'the connection stays open');
  await c.write(chatReq({ max_tokens: 4 }));
  const r2 = await c.response();
  assert.equal(r2.status, 200, r2.text);
  assert.equal(r2.json().usage.completion_tokens, 4);
  // a stream, then a plain request, still on the same connection
  await c.write(chatReq({ max_tokens: 3, stream: true }));
  const r3 = await c.response();
  assert.equal(r3.status, 200);
  assert.match(r3.headers['content-type'], /text\/event-stream/);
  assert.equal(lib.sseData(r3.text).at(-1), '[DONE]');
  await c.write(lib.httpRequest('GET', '/healthz'));
  const r4 = await c.response();
  assert.equal(r4.status, 200);
  assert.ok(!c.ended);
  c.destroy();
});

test('pipelining: two requests in one write are answered in order', async () => {
  const c = await lib.Raw.connect(gw.port);
  await c.write(Buffer.concat([chatReq({ max_tokens: 2 }), chatReq({ max_tokens: 5 }),
                               chatReq({ max_tokens: 3, stream: true }), lib.httpRequest('GET', '/healthz')]));
  const r1 = await c.response();
  const r2 = await c.response();
  const r3 = await c.response();
  const r4 = await c.response();
  for (const r of [r1, r2, r3, r4]) assert.equal(r.status, 200, r.text);
  assert.equal(r1.json().usage.completion_tokens, 2);
  assert.equal(r2.json().usage.completion_tokens, 5);
  assert.equal(lib.sseData(r3.text).at(-1), '[DONE]');
  assert.deepEqual(r4.json(), { status: 'ok' });
  const rids = [r1, r2, r3, r4].map((r) => r.headers['x-request-id']);
  assert.ok(rids.every(Boolean));
  assert.equal(new Set(rids).size, 4, `request ids are distinct: ${rids}`);
  const ids = [r1.json().id, r2.json().id];
  assert.notEqual(ids[0], ids[1]);
  assert.equal(c.buf.length, 0, 'nothing more was sent');
  c.destroy();
});

test('pipelined requests keep their own X-Request-Id', async () => {
  const c = await lib.Raw.connect(gw.port);
  await c.write(Buffer.concat([chatReq({ max_tokens: 1 }, { 'X-Request-Id': 'pipe-one' }),
                               chatReq({ max_tokens: 1 }, { 'X-Request-Id': 'pipe-two' })]));
  assert.equal((await c.response()).headers['x-request-id'], 'pipe-one');
  assert.equal((await c.response()).headers['x-request-id'], 'pipe-two');
  c.destroy();
});

test('a chunked request body is accepted', async () => {
  const body = Buffer.from(JSON.stringify({ ...lib.chat('fast', 'chunked body please'), max_tokens: 6 }));
  const parts = [body.subarray(0, 7), body.subarray(7, 20), body.subarray(20)];
  const head = ['POST /v1/chat/completions HTTP/1.1', 'Host: 127.0.0.1', `Authorization: Bearer ${KEY}`,
                'Content-Type: application/json', 'Transfer-Encoding: chunked', '', ''].join('\r\n');
  const c = await lib.Raw.connect(gw.port);
  await c.write(head);
  for (const p of parts) {
    await c.write(Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
    await lib.sleep(20); // separate segments: the server must reassemble
  }
  await c.write('0\r\n\r\n');
  const r = await c.response();
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().usage.completion_tokens, 6);
  // the same request with a Content-Length body gets the same answer
  const ref = await gw.post('/v1/chat/completions', body.toString(), { key: KEY });
  assert.equal((await ref.json()).choices[0].message.content, r.json().choices[0].message.content);
  c.destroy();
});

test('Expect: 100-continue gets a 100 before the body is sent', async () => {
  const body = JSON.stringify({ ...lib.chat('fast'), max_tokens: 2 });
  const c = await lib.Raw.connect(gw.port);
  await c.write(['POST /v1/chat/completions HTTP/1.1', 'Host: x', `Authorization: Bearer ${KEY}`,
                 `Content-Length: ${body.length}`, 'Expect: 100-continue', '', ''].join('\r\n'));
  await c.wait((s) => s.buf.toString('latin1').startsWith('HTTP/1.1 100'), { what: '100 Continue' });
  await c.write(body);
  const r = await c.response();
  assert.equal(r.status, 200, r.text);
  c.destroy();
});

test('X-Request-Id: echoed when given, generated when not', async () => {
  const given = await gw.post('/v1/chat/completions', { ...lib.chat('fast'), max_tokens: 1 },
                              { key: KEY, headers: { 'X-Request-Id': 'client-id-42.a_b:c' } });
  assert.equal(given.status, 200);
  assert.equal(given.headers.get('x-request-id'), 'client-id-42.a_b:c');

  const gen = [];
  for (let i = 0; i < 3; i++) {
    const r = await gw.post('/v1/chat/completions', { ...lib.chat('fast'), max_tokens: 1 }, { key: KEY });
    assert.equal(r.status, 200);
    gen.push(r.headers.get('x-request-id'));
  }
  for (const id of gen) assert.match(id, /^[A-Za-z0-9_.:-]{8,128}$/);
  assert.equal(new Set(gen).size, 3, 'generated ids are distinct');

  // an id that is not safe to log is replaced, never echoed
  const bad = await gw.post('/v1/chat/completions', { ...lib.chat('fast'), max_tokens: 1 },
                            { key: KEY, headers: { 'X-Request-Id': 'has "quotes" and spaces' } });
  assert.notEqual(bad.headers.get('x-request-id'), 'has "quotes" and spaces');
  assert.match(bad.headers.get('x-request-id'), /^[A-Za-z0-9_.:-]+$/);
  // errors carry it too
  const err = await gw.post('/v1/chat/completions', lib.chat('fast'), { headers: { 'X-Request-Id': 'err-id-1' } });
  assert.equal(err.status, 401);
  assert.equal(err.headers.get('x-request-id'), 'err-id-1');
});

test('HTTP/1.0: answered, then the connection closes', async () => {
  const c = await lib.Raw.connect(gw.port);
  await c.write(chatReq({ max_tokens: 2 }, {}, '1.0'));
  const r = await c.response();
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json().usage.completion_tokens, 2);
  assert.ok('content-length' in r.headers, 'a 1.0 client gets a Content-Length body');
  await c.closed({ timeout: lib.ms(2000) });
  c.destroy();

  // a stream to an HTTP/1.0 client cannot be chunked: it ends at the close
  const c2 = await lib.Raw.connect(gw.port);
  await c2.write(chatReq({ max_tokens: 3, stream: true }, {}, '1.0'));
  const r2 = await c2.response({ timeout: lib.ms(5000) });
  assert.equal(r2.status, 200);
  assert.ok(!/chunked/i.test(r2.headers['transfer-encoding'] ?? ''), 'no chunked encoding for HTTP/1.0');
  assert.equal(lib.sseData(r2.text).at(-1), '[DONE]');
  await c2.closed({ timeout: lib.ms(2000) });
  c2.destroy();
});

test('Connection: close is honoured', async () => {
  const c = await lib.Raw.connect(gw.port);
  await c.write(lib.httpRequest('GET', '/healthz', { headers: { Connection: 'close' } }));
  const r = await c.response();
  assert.equal(r.status, 200);
  await c.closed({ timeout: lib.ms(2000) });
  c.destroy();
});
