// Threshold webhooks on the real gateway, with receivers on loopback
// (node:http): each threshold a customer crosses arrives once, signed
// (X-Tollgate-Signature checked here with node:crypto and the secret the
// gateway read from its environment), however many requests come after
// it and across restarts; a receiver that answers 500 gets the event
// again until it answers 200; an event made at start for a threshold the
// previous process never reported; GET /admin/v1/webhooks; and a receiver
// that never answers slows no request and holds up no stop.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { ms, sha256, sleep, startGateway, startSim, stopAll, thisMonth, until } from './lib.mjs';

after(stopAll);

const SECRET = 'whsec_e2e_7f3a9c1d5e';
const ENV = { TG_E2E_HOOK_SECRET: SECRET };
const KEYS = { admin: 'sk-hooks-admin' };
for (const c of ['c1', 'f1', 'h1', 'r1', 'l1', 'k1']) KEYS[c] = `sk-hooks-${c}`;

/** An HTTP receiver on 127.0.0.1 that records every request and answers
 * 500 to the first `failures` deliveries of each event (by its id), then
 * 200. */
class Receiver {
  constructor({ failures = 0 } = {}) {
    this.got = []; // {method, url, headers, body, answered, t}
    this.failures = failures;
    this.server = http.createServer((req, res) => {
      const parts = [];
      req.on('data', (d) => parts.push(d));
      req.on('end', () => {
        const id = req.headers['x-tollgate-event-id'];
        const before = this.got.filter((g) => g.headers['x-tollgate-event-id'] === id).length;
        const answered = before < this.failures ? 500 : 200;
        this.got.push({ method: req.method, url: req.url, headers: req.headers,
                        body: Buffer.concat(parts).toString('utf8'), answered, t: Date.now() });
        res.writeHead(answered, { 'Content-Type': 'text/plain' });
        res.end(answered === 200 ? 'ok' : 'try again');
      });
    });
  }

  async start() {
    await new Promise((res) => this.server.listen(0, '127.0.0.1', res));
    this.url = `http://127.0.0.1:${this.server.address().port}/hooks/tollgate`;
    return this;
  }

  /** The events received (parsed), with what they were answered. */
  events(customer) {
    return this.got.map((g) => ({ ...g, event: JSON.parse(g.body) }))
      .filter((g) => !customer || g.event.customer === customer);
  }

  close() {
    this.server.closeAllConnections();
    return new Promise((res) => this.server.close(res));
  }
}

/** A TCP server that accepts connections and never answers. */
async function blackHole() {
  const socks = new Set();
  const server = net.createServer((s) => {
    socks.add(s);
    s.on('error', () => {});
    s.on('close', () => socks.delete(s));
  });
  await new Promise((res) => server.listen(0, '127.0.0.1', res));
  return {
    url: `http://127.0.0.1:${server.address().port}/hook`,
    accepted: () => socks.size,
    close: () => {
      for (const s of socks) s.destroy();
      return new Promise((res) => server.close(res));
    },
  };
}

/** Checks got's signature header against its body with SECRET. */
function verify(got) {
  const m = /^t=(\d+),v1=([0-9a-f]{64})$/.exec(got.headers['x-tollgate-signature'] ?? '');
  assert.ok(m, `a signature header: ${got.headers['x-tollgate-signature']}`);
  const expected = createHmac('sha256', SECRET).update(`${m[1]}.${got.body}`).digest();
  assert.ok(timingSafeEqual(expected, Buffer.from(m[2], 'hex')), 'the signature verifies');
  assert.ok(Math.abs(Number(m[1]) - got.t / 1000) < 60, 'signed at about the time it was sent');
}

let sim;
before(async () => {
  sim = await startSim({ seed: 5 });
});

function config({ apps, customers }) {
  return {
    providers: [{ name: 'sim', base_url: sim.baseURL }],
    // about 0.1 to 0.3 credits a request: thresholds are crossed a few requests apart
    offerings: [{ id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '1.00', output: '4.00' } }],
    models: [{ name: 'fast', offerings: ['sim/fast'] }],
    plans: [{ id: 'small', credit: '0.001', included_credits: 1, overage: '0', thresholds: [50, 100] }],
    apps,
    customers: customers.map(([id, app]) => ({ id, app, plan: 'small' })),
    keys: [
      ...customers.map(([id]) => ({ id, sha256: sha256(KEYS[id]), customer: id })),
      { id: 'admin', sha256: sha256(KEYS.admin), admin: true },
    ],
    metering: { flush_ms: 20 },
  };
}

const hook = (url) => ({ url, secret_env: 'TG_E2E_HOOK_SECRET' });

/** One chat request for customer; its status and how long it took. */
async function request(gw, customer) {
  const t = Date.now();
  const r = await gw.post('/v1/chat/completions',
    { model: 'fast', max_tokens: 60, messages: [{ role: 'user', content: 'tell me a story' }] },
    { key: KEYS[customer] });
  await r.text();
  return { status: r.status, ms: Date.now() - t };
}

/** Requests for customer until done() holds (at most 40); what they took. */
async function driveUntil(gw, customer, done, what) {
  const took = [];
  for (let i = 0; i < 40; i++) {
    const r = await request(gw, customer);
    assert.equal(r.status, 200, `request ${i} of ${customer}`);
    took.push(r.ms);
    if (await done()) return took;
  }
  assert.fail(`40 requests of ${customer} and still not ${what}`);
}

async function listing(gw, query = '', key = KEYS.admin) {
  const r = await gw.fetch(`/admin/v1/webhooks${query}`, { headers: { Authorization: `Bearer ${key}` } });
  return { status: r.status, body: await r.json() };
}

/** The gateway's events of customer, by threshold, once there are n. */
async function eventsOf(gw, customer, n, status) {
  return until(async () => {
    const r = await listing(gw, `?customer=${customer}${status ? `&status=${status}` : ''}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    return r.body.webhooks.length >= n ? r.body.webhooks : null;
  }, { what: `${n} ${status ?? ''} events of ${customer}`, timeout: ms(10000) });
}

/** Whether customer has used all of its period's included credit. */
async function pastCredits(gw, customer) {
  const r = await gw.fetch(`/admin/v1/customers/${customer}/wallet`, { headers: { Authorization: `Bearer ${KEYS.admin}` } });
  return Number((await r.json()).live.used) >= 1;
}

function assertNoSecret(gw) {
  for (const line of gw.proc.text()) assert.ok(!line.includes(SECRET), `the secret is in a log line: ${line}`);
}

describe('threshold events', () => {
  let rx, flaky, gw;

  before(async () => {
    rx = await new Receiver().start();
    flaky = await new Receiver({ failures: 2 }).start();
    gw = await startGateway(config({
      apps: [{ id: 'shop', webhook: hook(rx.url) }, { id: 'flaky', webhook: hook(flaky.url) }],
      customers: [['c1', 'shop'], ['f1', 'flaky']],
    }), { env: ENV });
  });

  after(async () => {
    await rx.close();
    await flaky.close();
  });

  test('each threshold arrives once, signed, and no more however many requests follow', async () => {
    await driveUntil(gw, 'c1', () => rx.events('c1').some((g) => g.event.threshold === 100),
                     'past 100% of its credits');
    for (let i = 0; i < 5; i++) assert.equal((await request(gw, 'c1')).status, 200);
    await sleep(ms(1500)); // room for an event that should not come
    const got = rx.events('c1');
    assert.deepEqual(got.map((g) => g.event.threshold).sort((a, b) => a - b), [50, 100],
                     'one event per threshold');
    for (const g of got) {
      verify(g);
      assert.equal(g.method, 'POST');
      assert.equal(g.url, '/hooks/tollgate');
      assert.equal(g.headers['content-type'], 'application/json');
      assert.equal(g.headers['x-tollgate-event-id'], g.event.id);
      const e = g.event;
      assert.match(e.id, /^evt_[0-9a-f]{24}$/);
      assert.equal(e.type, 'credits.threshold');
      assert.equal(e.app, 'shop');
      assert.equal(e.customer, 'c1');
      assert.equal(e.plan, 'small');
      assert.equal(e.period, thisMonth());
      assert.equal(e.included_credits, '1.000000000');
      assert.match(e.used_credits, /^\d+\.\d{9}$/);
      assert.ok(Number(e.used_credits) * 100 >= e.threshold, `used ${e.used_credits} reaches ${e.threshold}%`);
      for (const t of [e.created, e.at]) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      assert.deepEqual(Object.keys(e), ['id', 'type', 'created', 'app', 'customer', 'plan', 'period',
                                        'threshold', 'included_credits', 'used_credits', 'at']);
    }
    assert.notEqual(got[0].event.id, got[1].event.id);
  });

  test('a receiver that answers 500 gets the event again, with backoff, until it answers 200', async () => {
    await driveUntil(gw, 'f1', () => flaky.got.length > 0, 'past 50%');
    const tries = await until(() => {
      const t = flaky.events('f1').filter((g) => g.event.threshold === 50);
      return t.length >= 3 ? t : null;
    }, { what: 'three attempts at the 50% event', timeout: ms(10000) });
    assert.deepEqual(tries.map((g) => g.answered), [500, 500, 200]);
    assert.equal(new Set(tries.map((g) => g.body)).size, 1, 'the same body each time');
    for (const g of tries) verify(g);
    // 1 s after the first failure, 2 s after the second
    assert.ok(tries[1].t - tries[0].t >= 900, `first retry after ${tries[1].t - tries[0].t} ms`);
    assert.ok(tries[2].t - tries[1].t >= 1900, `second retry after ${tries[2].t - tries[1].t} ms`);
    const [ev] = (await eventsOf(gw, 'f1', 1, 'delivered')).filter((e) => e.threshold === 50);
    assert.equal(ev.attempts, 3);
    assert.equal(ev.last_error, 'HTTP 500');
    assert.match(ev.delivered, /Z$/);
    assert.equal(ev.next_attempt, null);
  });

  test('GET /admin/v1/webhooks lists the events with their status and payload', async () => {
    const c1 = await eventsOf(gw, 'c1', 2, 'delivered');
    assert.deepEqual(c1.map((e) => e.threshold), [100, 50], 'newest first');
    for (const e of c1) {
      assert.equal(e.status, 'delivered');
      assert.equal(e.attempts, 1);
      assert.equal(e.last_error, null);
      assert.equal(e.app, 'shop');
      assert.equal(e.period, thisMonth());
      const sent = rx.events('c1').find((g) => g.event.id === e.id);
      assert.deepEqual(e.payload, sent.event, 'the payload as it was sent');
      assert.equal(e.id, e.payload.id);
      for (const k of ['created', 'delivered']) assert.match(e[k], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    const all = await listing(gw);
    assert.ok(all.body.webhooks.length >= 3);
    const flakyOnes = (await listing(gw, '?app=flaky')).body.webhooks;
    assert.ok(flakyOnes.length >= 1 && flakyOnes.every((e) => e.app === 'flaky' && e.customer === 'f1'));
    const delivered = (await listing(gw, '?status=delivered')).body.webhooks;
    assert.ok(delivered.length >= 3 && delivered.every((e) => e.status === 'delivered'));
    assert.equal((await listing(gw, '?status=failed')).body.webhooks.length, 0);
    assert.equal((await listing(gw, '?limit=1')).body.webhooks.length, 1);
    assert.equal((await listing(gw, '?customer=nobody')).body.webhooks.length, 0);
    for (const q of ['?status=sent', '?limit=0', '?limit=1001', '?limit=x']) {
      const r = await listing(gw, q);
      assert.equal(r.status, 400, q);
      assert.equal(r.body.error.code, 'invalid_query');
    }
    const r = await listing(gw, '', KEYS.c1);
    assert.equal(r.status, 403);
    assert.equal(r.body.error.code, 'admin_key_required');
    assert.ok(!JSON.stringify(all.body).includes(SECRET));
    assertNoSecret(gw);
  });
});

describe('at most once across restarts', () => {
  test('a restart makes no event twice, and makes the ones the last process never reported', async () => {
    const rx = await new Receiver().start();
    const cfg = config({
      apps: [{ id: 'shop', webhook: hook(rx.url) }, { id: 'quiet' }],
      customers: [['r1', 'shop'], ['l1', 'quiet'], ['k1', 'shop']],
    });
    const gw = await startGateway(cfg, { env: ENV });
    await driveUntil(gw, 'r1', () => rx.events('r1').length === 2, 'past both thresholds');
    // an app without a webhook gets no events
    await driveUntil(gw, 'l1', () => pastCredits(gw, 'l1'), 'past its included credits');
    assert.equal((await listing(gw, '?customer=l1')).body.webhooks.length, 0);

    // the app gets a webhook, and the gateway restarts: l1's thresholds
    // were reached before, so the start makes their events; r1's exist
    const next = structuredClone(gw.config); // with the data directory it started with
    next.apps[1].webhook = hook(rx.url);
    gw.writeConfig(next);
    await gw.restart();
    await until(() => rx.events('l1').length === 2, { what: "l1's events after the restart" });
    for (let i = 0; i < 3; i++) {
      assert.equal((await request(gw, 'r1')).status, 200);
      assert.equal((await request(gw, 'l1')).status, 200);
    }
    await sleep(ms(1500));
    assert.deepEqual(rx.events('r1').map((g) => g.event.threshold).sort((a, b) => a - b), [50, 100]);
    assert.deepEqual(rx.events('l1').map((g) => g.event.threshold).sort((a, b) => a - b), [50, 100]);
    for (const g of rx.events('l1')) {
      verify(g);
      assert.equal(g.event.app, 'quiet');
      assert.ok(Number(g.event.used_credits) >= 1);
    }

    // killed right after crossing: whatever the kill interrupted, the
    // next start has one event per threshold, delivered (a receiver may
    // see one twice, when the kill came between its answer and the
    // record of it: the same id)
    await driveUntil(gw, 'k1', () => pastCredits(gw, 'k1'), 'past its included credits');
    await gw.restart({ kill: 'SIGKILL' });
    const k1 = await eventsOf(gw, 'k1', 2, 'delivered');
    assert.deepEqual(k1.map((e) => e.threshold).sort((a, b) => a - b), [50, 100]);
    const ids = new Map(k1.map((e) => [e.threshold, e.id]));
    for (const g of rx.events('k1')) assert.equal(g.event.id, ids.get(g.event.threshold));
    assert.deepEqual([...new Set(rx.events('k1').map((g) => g.event.threshold))].sort((a, b) => a - b), [50, 100]);
    assertNoSecret(gw);
    await gw.proc.stop();
    await rx.close();
  });
});

describe('a receiver that never answers', () => {
  test('slows no request, leaves its events pending, and holds up no stop', async () => {
    const hole = await blackHole();
    const gw = await startGateway(config({
      apps: [{ id: 'stuck', webhook: hook(hole.url) }],
      customers: [['h1', 'stuck']],
    }), { env: ENV });
    const took = await driveUntil(gw, 'h1', () => pastCredits(gw, 'h1'), 'past both thresholds');
    await until(() => hole.accepted() > 0, { what: 'the sender to connect to the receiver' });
    // the second event is stored while the sender waits on the first
    const pending = await eventsOf(gw, 'h1', 2, 'pending');
    // the sender is stuck in an attempt now: requests do not notice
    for (let i = 0; i < 10; i++) {
      const r = await request(gw, 'h1');
      assert.equal(r.status, 200);
      took.push(r.ms);
    }
    const slowest = Math.max(...took);
    assert.ok(slowest < ms(1000), `the slowest request took ${slowest} ms`);
    assert.deepEqual(pending.map((e) => e.threshold), [100, 50]);
    for (const e of pending) assert.match(e.next_attempt, /Z$/);
    // stop cuts the attempt in flight: well within the 10 s it may take
    const t = Date.now();
    await gw.proc.stop();
    gw.proc.assertClean();
    assert.ok(Date.now() - t < ms(5000), `stopped in ${Date.now() - t} ms`);
    await hole.close();
  });
});
