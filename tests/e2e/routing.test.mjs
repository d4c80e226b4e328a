// Routing across offerings (docs/routing.md): fallback with no client-visible
// error, circuit breakers that open, half-open and close, the attempt budget
// and the deadline, Retry-After, the cheapest / fastest / weighted
// strategies, routing rules, and cheap-first escalation. Several standalone
// sims stand for the providers; each one's /sim/stats says who was called.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-routing';
const STARTER = 'sk-e2e-routing-starter';
let good, cheap, slow, failing, limited, resetting, gw, client;
let downPort; // nothing listens there until the breaker test starts a sim on it

async function freePort() {
  const srv = net.createServer();
  await new Promise((res) => srv.listen(0, '127.0.0.1', res));
  const { port } = srv.address();
  await new Promise((res) => srv.close(res));
  return port;
}

const price = (input, output) => ({ input, output });
const offer = (id, provider, model, p) => ({ id, provider, model, price: p });

before(async () => {
  good = await lib.startSim({ seed: 3 });
  cheap = await lib.startSim({ seed: 3 });
  slow = await lib.startSim({ seed: 3, ttftMs: 150 });
  failing = await lib.startSim({ seed: 3, faults: ['500'] });
  limited = await lib.startSim({ seed: 3, faults: ['429'], conf: { retry_after_s: 1 } });
  resetting = await lib.startSim({ seed: 3, faults: ['reset'] });
  downPort = await freePort();
  const cfg = {
    providers: [
      lib.simProvider('good', good), lib.simProvider('cheap', cheap), lib.simProvider('slow', slow),
      lib.simProvider('failing', failing), lib.simProvider('limited', limited),
      lib.simProvider('resetting', resetting),
      { name: 'down', base_url: `http://127.0.0.1:${downPort}/v1`, connect_timeout_ms: 500 },
    ],
    offerings: [
      offer('good/m', 'good', 'sim-m', price('1.00', '2.00')),
      offer('good/premium', 'good', 'sim-premium', price('5.00', '15.00')),
      offer('cheap/m', 'cheap', 'sim-m', price('0.10', '0.20')),
      offer('slow/m', 'slow', 'sim-m', price('0.01', '0.01')),
      offer('failing/m', 'failing', 'sim-m', price('1.00', '2.00')),
      offer('limited/m', 'limited', 'sim-m', price('1.00', '2.00')),
      offer('resetting/m', 'resetting', 'sim-m', price('1.00', '2.00')),
      offer('down/m', 'down', 'sim-m', price('1.00', '2.00')),
    ],
    models: [
      { name: 'fallback', offerings: ['failing/m', 'good/m'] },
      { name: 'fallback-reset', offerings: ['resetting/m', 'cheap/m'] },
      { name: 'cheapest', strategy: 'cheapest', offerings: ['good/m', 'cheap/m'] },
      { name: 'fastest', strategy: 'fastest', offerings: ['slow/m', 'good/m'] },
      { name: 'weighted', strategy: 'weighted',
        offerings: [{ offering: 'good/m', weight: 3 }, { offering: 'cheap/m', weight: 1 }] },
      { name: 'breaker', offerings: ['down/m', 'cheap/m'] },
      { name: 'limited', offerings: ['limited/m'] },
      { name: 'fast', offerings: ['cheap/m'] },
      { name: 'premium', offerings: ['good/premium'] },
    ],
    plans: [{ id: 'starter', included_credits: 1000000 }],
    apps: [{ id: 'app', margin: { markup_bps: 5000 } }],
    customers: [{ id: 'small', app: 'app', plan: 'starter' }, { id: 'big', app: 'app' }],
    routing: {
      attempts: 3,
      backoff_ms: 10,
      breaker: { failures: 3, cooldown_ms: 600 },
      rules: [
        { match: { plan: 'starter', model: 'premium' }, refuse: true },
        { match: { feature: 'classify' }, use: 'fast' },
        { match: { feature: 'extract', model: 'premium' }, try_first: 'fast',
          escalate_on: ['length', 'invalid_json', { content_matches: 'ESCALATE-ME' }] },
        { match: { feature: 'extract-strict', model: 'premium' }, try_first: 'fast',
          escalate_on: [{ content_matches: '[A-Za-z]+' }] },
      ],
    },
    keys: [
      { id: 'r', sha256: lib.sha256(KEY), app: 'app', customer: 'big' },
      { id: 'starter', sha256: lib.sha256(STARTER), customer: 'small' },
      { id: 'admin', sha256: lib.sha256('sk-e2e-routing-admin'), admin: true },
    ],
  };
  gw = await lib.startGateway(cfg);
  client = gw.client(KEY);
});
after(lib.stopAll);

const MSG = [{ role: 'user', content: 'Route me somewhere.' }];

async function chatRaw(model, extra = {}, key = KEY, headers = {}) {
  return gw.post('/v1/chat/completions', { model, messages: MSG, ...extra }, { key, headers });
}

async function routingState() {
  const r = await gw.fetch('/admin/v1/routing', { headers: { Authorization: 'Bearer sk-e2e-routing-admin' } });
  assert.equal(r.status, 200);
  return r.json();
}

const offeringState = async (id) => (await routingState()).offerings.find((o) => o.id === id);

test('fallback: a failing offering is skipped with no error the client sees', async () => {
  const f0 = (await failing.stats()).requests;
  const rid = 'req-routing-fallback';
  const res = await client.chat.completions.create({ model: 'fallback', messages: MSG },
                                                   { headers: { 'X-Request-Id': rid } });
  const ref = await good.client().chat.completions.create({ model: 'sim-m', messages: MSG });
  assert.equal(res.choices[0].message.content, ref.choices[0].message.content);
  assert.equal((await failing.stats()).requests - f0, 1, 'one call went to the failing offering');
  const st = await offeringState('failing/m');
  assert.equal(st.errors, 1);
  assert.equal(st.last_error, 'http_500');
  const rec = (await gw.records(1)).find((r) => r.rid === rid);
  assert.equal(rec.route, 'fallback');
  assert.equal(rec.offering, 'good/m');
  assert.equal(rec.status, 200);
});

test('a failed attempt the provider may bill is an attempt record, at the builder\'s cost', async () => {
  const rid = 'req-routing-reset';
  const res = await client.chat.completions.create({ model: 'fallback-reset', messages: MSG },
                                                   { headers: { 'X-Request-Id': rid } });
  assert.ok(res.choices[0].message.content.length > 0);
  const recs = await lib.until(() => {
    const r = gw.usage().filter((x) => x.rid === rid);
    return r.length === 2 ? r : null;
  }, { what: 'the request and its attempt record' });
  const att = recs.find((r) => r.attempt);
  const req = recs.find((r) => !r.attempt);
  // the provider took the request and broke the connection: billed for the input, estimated
  assert.equal(att.offering, 'resetting/m');
  assert.equal(att.route, 'fallback');
  assert.equal(att.attempts, 1);
  assert.equal(att.estimated, true);
  assert.ok(att.prompt_tokens > 0);
  assert.equal(att.completion_tokens, 0);
  assert.ok(Number(att.cost) > 0);
  assert.equal(Number(att.charge), 0, 'the customer does not pay for the way to its answer');
  assert.equal(Number(att.margin), -Number(att.cost));
  assert.equal(att.asked_cost, '0.000000000');
  assert.equal(req.offering, 'cheap/m');
  assert.equal(req.attempts, 2);
  assert.equal(req.route, 'fallback');
  // the baseline is the model asked's first offering: resetting/m's prices
  assert.ok(Number(req.asked_cost) > Number(req.cost));
});

test('the cheapest strategy serves from the cheaper offering', async () => {
  await cheap.reset();
  await good.reset();
  for (let i = 0; i < 5; i++) await client.chat.completions.create({ model: 'cheapest', messages: MSG });
  assert.equal((await cheap.model('sim-m')).requests, 5);
  assert.equal((await good.model('sim-m')).requests, 0);
});

test('the fastest strategy measures both, then serves from the faster', async () => {
  await slow.reset();
  await good.reset();
  for (let i = 0; i < 8; i++) await client.chat.completions.create({ model: 'fastest', messages: MSG });
  // each offering is tried once while unmeasured; then the faster one wins
  assert.equal((await slow.model('sim-m')).requests, 1);
  assert.equal((await good.model('sim-m')).requests, 7);
  const st = await offeringState('slow/m');
  assert.ok(st.samples >= 1 && st.ttft_us >= 100000, `slow/m measured: ${JSON.stringify(st)}`);
});

test('the weighted strategy splits by weight', async () => {
  await cheap.reset();
  await good.reset();
  const N = 200;
  for (let i = 0; i < N; i += 20)
    await Promise.all(Array.from({ length: 20 }, () => client.chat.completions.create({ model: 'weighted', messages: MSG })));
  const g = (await good.model('sim-m')).requests;
  const c = (await cheap.model('sim-m')).requests;
  assert.equal(g + c, N);
  // 3:1 -> 150 expected; 5 sigma of a binomial(200, 0.75) is about 31
  assert.ok(g > 119 && g < 181, `good served ${g} of ${N}`);
});

test('a breaker opens after repeated failures, probes half-open, and closes', async () => {
  await cheap.reset();
  // down/m refuses connections: three failures open its breaker
  for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'breaker', messages: MSG });
  let st = await offeringState('down/m');
  assert.equal(st.breaker, 'open');
  assert.equal(st.consecutive_failures, 3);
  assert.equal(st.opens, 1);
  // open: requests go straight to cheap/m, down/m is not tried
  for (let i = 0; i < 3; i++) await client.chat.completions.create({ model: 'breaker', messages: MSG });
  st = await offeringState('down/m');
  assert.equal(st.errors, 3, 'no call went to the open offering');
  assert.equal((await cheap.model('sim-m')).requests, 6);
  const metrics = await gw.metrics();
  assert.match(metrics, /tollgate_breaker_state\{offering="down\/m"\} 1/);
  // after the cooldown the next request is the probe; it fails: open again
  await lib.sleep(700);
  assert.equal((await offeringState('down/m')).breaker, 'half_open');
  await client.chat.completions.create({ model: 'breaker', messages: MSG });
  st = await offeringState('down/m');
  assert.equal(st.breaker, 'open');
  assert.equal(st.opens, 2);
  assert.equal(st.errors, 4);
  // the provider comes back; after the cooldown the probe succeeds and closes it
  const back = new lib.Proc('sim', ['sim', '--listen', `127.0.0.1:${downPort}`, '--seed', '3']);
  await back.waitLine(/listening on 127\.0\.0\.1:/, { timeout: lib.ms(5000) });
  await lib.sleep(700);
  await client.chat.completions.create({ model: 'breaker', messages: MSG });
  st = await offeringState('down/m');
  assert.equal(st.breaker, 'closed');
  assert.equal(st.consecutive_failures, 0);
  assert.equal(st.successes, 1);
});

test('the attempt budget bounds the calls; the last failure is answered', async () => {
  const cfg = {
    providers: [lib.simProvider('failing', failing), lib.simProvider('limited', limited),
                lib.simProvider('good', good)],
    offerings: [offer('failing/m', 'failing', 'sim-m', price('1', '1')),
                offer('limited/m', 'limited', 'sim-m', price('1', '1')),
                offer('good/m', 'good', 'sim-m', price('1', '1'))],
    models: [{ name: 'm', offerings: ['failing/m', 'limited/m', 'good/m'] }],
    routing: { attempts: 2, backoff_ms: 1 },
    keys: lib.keyEntries({ r: KEY }),
  };
  const g2 = await lib.startGateway(cfg);
  const f0 = (await failing.stats()).requests;
  const l0 = (await limited.stats()).requests;
  await good.reset();
  const r = await g2.post('/v1/chat/completions', { model: 'm', messages: MSG }, { key: KEY });
  // failing/m (500), then limited/m (429): two attempts, both failed
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '1');
  lib.assertErrorShape(await r.json(), { type: 'rate_limit_error' });
  assert.equal((await failing.stats()).requests - f0, 1);
  assert.equal((await limited.stats()).requests - l0, 1);
  assert.equal((await good.model('sim-m')).requests, 0, 'the third offering is past the budget');
});

test('Retry-After of the same offering is waited for within the deadline', async () => {
  const l0 = (await limited.stats()).requests;
  const t0 = Date.now();
  const r = await chatRaw('limited');
  const took = Date.now() - t0;
  assert.equal(r.status, 429);
  assert.equal(r.headers.get('retry-after'), '1');
  // 3 attempts, each after the provider's 1 s
  assert.equal((await limited.stats()).requests - l0, 3);
  assert.ok(took >= 1900, `two waits of 1 s: took ${took} ms`);
});

test('rules: refuse a model for a plan, route a feature to another model', async () => {
  const r = await chatRaw('premium', {}, STARTER);
  assert.equal(r.status, 403);
  const body = await r.json();
  lib.assertErrorShape(body);
  assert.equal(body.error.code, 'model_not_allowed');
  await cheap.reset();
  const ok = await chatRaw('premium', {}, KEY, { 'X-Tollgate-Feature': 'classify' });
  assert.equal(ok.status, 200);
  assert.equal((await cheap.model('sim-m')).requests, 1);
});

test('cheap first: an answer that passes is served by the cheap model', async () => {
  await cheap.reset();
  await good.reset();
  const r = await chatRaw('premium', {}, KEY, { 'X-Tollgate-Feature': 'extract' });
  assert.equal(r.status, 200);
  assert.equal((await cheap.model('sim-m')).requests, 1);
  assert.equal((await good.model('sim-premium')).requests, 0);
});

test('cheap first: a cut answer (length) escalates to the model asked', async () => {
  await cheap.reset();
  await good.reset();
  const r = await chatRaw('premium', { max_tokens: 3 }, KEY, { 'X-Tollgate-Feature': 'extract' });
  assert.equal(r.status, 200);
  const body = await r.json();
  assert.equal(body.model, 'sim-premium');
  assert.equal((await cheap.model('sim-m')).requests, 1);
  assert.equal((await good.model('sim-premium')).requests, 1);
  const rid = r.headers.get('x-request-id');
  const recs = await lib.until(() => {
    const r = gw.usage().filter((x) => x.rid === rid);
    return r.length === 2 ? r : null;
  }, { what: 'the escalated request and its cheap attempt' });
  const rec = recs.find((x) => !x.attempt);
  const att = recs.find((x) => x.attempt);
  assert.equal(rec.route, 'escalated');
  assert.equal(rec.model, 'premium');
  assert.equal(rec.offering, 'good/premium');
  assert.equal(rec.attempts, 2);
  assert.equal(rec.asked_cost, rec.cost, 'served by the model asked');
  // the cheap answer is billed by the provider: counted, at the builder's cost
  assert.equal(att.offering, 'cheap/m');
  assert.equal(att.route, 'escalated');
  assert.equal(att.completion_tokens, 3);
  assert.equal(att.estimated, false);
  assert.equal(Number(att.charge), 0);
  assert.ok(Number(att.cost) > 0);
});

test('report --by route: requests, cost and what the model asked would have cost', async () => {
  await lib.until(() => gw.usage().length >= 30, { what: 'the records' });
  const rep = gw.report(['--period', lib.thisMonth(), '--by', 'route']);
  const recs = gw.usage();
  for (const route of ['primary', 'fallback', 'escalated']) {
    const row = rep.rows.find((x) => x.route === route);
    assert.ok(row, `a ${route} row: ${JSON.stringify(rep.rows.map((x) => x.route))}`);
    const mine = recs.filter((x) => x.route === route);
    const nanos = (k) => mine.reduce((a, x) => a + BigInt(Math.round(Number(x[k]) * 1e9)), 0n);
    assert.equal(row.requests, mine.filter((x) => !x.attempt).length, route);
    assert.equal(BigInt(row.cost_nanos), nanos('cost'), `${route} cost`);
    assert.equal(BigInt(row.asked_cost_nanos), nanos('asked_cost'), `${route} asked_cost`);
    assert.equal(BigInt(row.savings_nanos), BigInt(row.asked_cost_nanos) - BigInt(row.cost_nanos));
  }
  // escalating cost more than the model asked alone: a negative saving, made visible
  assert.ok(BigInt(rep.rows.find((x) => x.route === 'escalated').savings_nanos) < 0n);
  const t = rep.total;
  assert.equal(BigInt(t.charge_nanos), BigInt(t.cost_nanos) + BigInt(t.margin_nanos) + BigInt(t.fee_nanos));
});

test('cheap first: JSON asked and not given escalates', async () => {
  await cheap.reset();
  await good.reset();
  const r = await chatRaw('premium', { response_format: { type: 'json_object' } }, KEY,
                          { 'X-Tollgate-Feature': 'extract' });
  assert.equal(r.status, 200);
  assert.equal((await good.model('sim-premium')).requests, 1);
});

test('cheap first: content matching the rule\'s regex escalates', async () => {
  await cheap.reset();
  await good.reset();
  const r = await chatRaw('premium', {}, KEY, { 'X-Tollgate-Feature': 'extract-strict' });
  assert.equal(r.status, 200);
  assert.equal((await r.json()).model, 'sim-premium');
  assert.equal((await cheap.model('sim-m')).requests, 1);
  assert.equal((await good.model('sim-premium')).requests, 1);
});

test('cheap first: streams go straight to the model asked', async () => {
  await cheap.reset();
  await good.reset();
  const s = await client.chat.completions.create(
    { model: 'premium', messages: MSG, stream: true, max_tokens: 3 },
    { headers: { 'X-Tollgate-Feature': 'extract' } });
  for await (const _ of s);
  assert.equal((await cheap.model('sim-m')).requests, 0);
  assert.equal((await good.model('sim-premium')).requests, 1);
});

test('the deadline bounds the wait for a first byte', async () => {
  const cfg = {
    providers: [lib.simProvider('slow', slow)],
    offerings: [offer('slow/m', 'slow', 'sim-m', price('1', '1'))],
    models: [{ name: 'm', offerings: ['slow/m'] }],
    routing: { deadline_ms: 100 },
    keys: lib.keyEntries({ r: KEY }),
  };
  const g2 = await lib.startGateway(cfg);
  const t0 = Date.now();
  const r = await g2.post('/v1/chat/completions', { model: 'm', messages: MSG }, { key: KEY });
  const took = Date.now() - t0;
  assert.equal(r.status, 504);
  lib.assertErrorShape(await r.json(), { type: 'upstream_error' });
  assert.ok(took < 140 + 500, `answered within the deadline: ${took} ms`);
});
