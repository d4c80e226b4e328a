// Plans, credits and caps on the real gateway: a hard cap that holds under
// 500 concurrent requests (streams and not, random max_tokens) and does not
// leak between customers; credits that run out without overage (402 in
// OpenAI's shape, through the official SDK) and come back with a top-up;
// burn order and the wallet's zero-sum ledger; streams cut cleanly at the
// cap; plan models and degrade; rate limits with Retry-After.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ms, run, sdkError, sha256, sleep, startGateway, startSim, stopAll, until } from './lib.mjs';

after(stopAll);

const KEYS = { a: 'sk-plans-a', b: 'sk-plans-b', c: 'sk-plans-c', d: 'sk-plans-d', e: 'sk-plans-e',
               r: 'sk-plans-r', s: 'sk-plans-s', p: 'sk-plans-p', p2: 'sk-plans-p2', q: 'sk-plans-q',
               w: 'sk-plans-w', x: 'sk-plans-x',
               admin: 'sk-plans-admin' };
const USD = 1000000000n;

let sim;
let gw;

before(async () => {
  // streams pace at 2,000 tokens/s, so 500 of them overlap; answers run
  // 20..400 tokens unless max_tokens stops them sooner
  sim = await startSim({ seed: 11, tps: 2000, conf: { completion_tokens: { min: 20, max: 400 } } });
  gw = await startGateway({
    providers: [{ name: 'sim', base_url: sim.baseURL }],
    offerings: [
      // dear on purpose: a few hundred output tokens are a cent, so 500 requests pass 1 USD
      { id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '2.00', output: '40.00' } },
      { id: 'sim/premium', provider: 'sim', model: 'sim-premium', price: { input: '5.00', output: '80.00' } },
    ],
    models: [{ name: 'fast', offerings: ['sim/fast'] }, { name: 'premium', offerings: ['sim/premium'] }],
    plans: [
      // pay as you go, never past 1 USD a period
      { id: 'capped', overage: '0', hard_cap: { usd: '1.00' }, default_max_tokens: 300 },
      // 1 credit of 0.001 USD included, then grants, then nothing
      { id: 'tiny', credit: '0.001', included_credits: 1, models: ['fast'] },
      // premium turns into fast past 100% of its included credits
      { id: 'degrading', credit: '0.001', included_credits: 1, overage: '0.002',
        degrade: { from: ['premium'], to: 'fast', at: 100 } },
      { id: 'limited', overage: '0', limits: { rpm: 3, concurrent: 2 }, key_limits: { tpm: 2000 } },
      // streams start with a small hold and must grow it as they go
      { id: 'streamcap', overage: '0', hard_cap: { usd: '0.004' }, default_max_tokens: 20 },
      // prepaid only: no included credits, no overage
      { id: 'prepaid', credit: '0.001' },
      { id: 'conc', overage: '0', limits: { concurrent: 2 } },
      // agent runs: 3 steps a run; max_cost comes from the app
      { id: 'agents', overage: '0', runs: { max_steps: 3 } },
    ],
    apps: [{ id: 'app', runs: { max_steps: 100, max_cost: '0.002' } }],
    customers: [
      { id: 'ca', app: 'app', plan: 'capped' },
      { id: 'cb', app: 'app', plan: 'capped' },
      { id: 'cc', app: 'app', plan: 'tiny' },
      { id: 'cd', app: 'app', plan: 'degrading' },
      { id: 'ce', app: 'app', plan: 'capped' },
      { id: 'cr', app: 'app', plan: 'limited' },
      { id: 'cs', app: 'app', plan: 'streamcap' },
      { id: 'cp', app: 'app', plan: 'prepaid' },
      { id: 'cp2', app: 'app', plan: 'prepaid' },
      { id: 'cq', app: 'app', plan: 'conc' },
      { id: 'cw', app: 'app', plan: 'agents' },
      { id: 'cx', app: 'app', plan: 'conc' },
    ],
    keys: [
      { id: 'a', sha256: sha256(KEYS.a), customer: 'ca' },
      { id: 'b', sha256: sha256(KEYS.b), customer: 'cb' },
      { id: 'c', sha256: sha256(KEYS.c), customer: 'cc' },
      { id: 'd', sha256: sha256(KEYS.d), customer: 'cd' },
      { id: 'e', sha256: sha256(KEYS.e), customer: 'ce' },
      { id: 'r', sha256: sha256(KEYS.r), customer: 'cr' },
      { id: 's', sha256: sha256(KEYS.s), customer: 'cs' },
      { id: 'p', sha256: sha256(KEYS.p), customer: 'cp' },
      { id: 'p2', sha256: sha256(KEYS.p2), customer: 'cp2' },
      { id: 'q', sha256: sha256(KEYS.q), customer: 'cq' },
      { id: 'w', sha256: sha256(KEYS.w), customer: 'cw' },
      { id: 'x', sha256: sha256(KEYS.x), customer: 'cx' },
      { id: 'admin', sha256: sha256(KEYS.admin), admin: true },
    ],
    metering: { flush_ms: 20 },
  });
});

let seq = 0;
const rid = (tag) => `${tag}-${process.pid}-${++seq}`;
const nanos = (usd) => BigInt(usd.replace('.', '')); // "0.000123400" -> 123400n

async function admin(path, body) {
  const r = await gw.fetch(path, {
    method: body ? 'POST' : 'GET',
    headers: { Authorization: `Bearer ${KEYS.admin}`, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: r.status, body: await r.json() };
}

async function wallet(customer) {
  const r = await admin(`/admin/v1/customers/${customer}/wallet`);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return r.body;
}

/** One request; returns what the client saw. A stream is read to its end. */
async function call(key, { stream, maxTokens, content = 'tell me a long story', model = 'fast', id = rid('r') }) {
  const body = { model, stream, messages: [{ role: 'user', content }] };
  if (maxTokens !== undefined) body.max_tokens = maxTokens;
  const r = await gw.post('/v1/chat/completions', body, { key, headers: { 'X-Request-Id': id } });
  const text = await r.text();
  return { id, status: r.status, text, stream, headers: r.headers };
}

/** The data events of an SSE text, parsed ([DONE] as the string). */
function events(text) {
  return text.split('\n\n').filter((e) => e.startsWith('data: '))
    .map((e) => e.slice(6)).map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

/** Every record of customer, waiting until n are in the ledger. */
async function recordsOf(customer, n) {
  return gw.records(n, { args: ['--customer', customer], timeout: ms(20000) });
}

function checkAnswers(results) {
  let admitted = 0, refused = 0, cut = 0;
  for (const r of results) {
    if (r.status === 402) {
      refused++;
      const e = JSON.parse(r.text).error;
      assert.equal(e.code, 'hard_cap_reached');
      assert.match(e.message, /hard cap of plan 'capped', 1 USD per period/);
      continue;
    }
    assert.equal(r.status, 200, `admitted or refused, nothing else: ${r.status} ${r.text.slice(0, 200)}`);
    admitted++;
    if (!r.stream) continue;
    const ev = events(r.text);
    assert.equal(ev.at(-1), '[DONE]', 'a stream ends with [DONE], cut or not');
    const last = ev.at(-2);
    if (last.tollgate) {
      cut++;
      assert.equal(last.tollgate.stopped, 'plan_limit');
      assert.equal(last.choices[0].finish_reason, 'length');
    }
  }
  return { admitted, refused, cut };
}

describe('a hard cap holds at any concurrency', () => {
  test('500 concurrent requests against 1.00 USD: never a nano past it, 402 or served', async () => {
    let rng = 7;
    const rand = (n) => {
      rng = (rng * 1103515245 + 12345) % 2147483648;
      return rng % n;
    };
    const jobs = Array.from({ length: 500 }, (_, i) => ({
      stream: rand(2) === 0,
      maxTokens: i % 5 === 0 ? undefined : 10 + rand(390), // a fifth reserve the plan's default
    }));
    const results = await Promise.all(jobs.map((j) => call(KEYS.a, j)));
    const { admitted, refused } = checkAnswers(results);
    assert.ok(admitted > 20 && refused > 20, `the cap bound: ${admitted} served, ${refused} refused`);
    const recs = await recordsOf('ca', 500);
    assert.equal(recs.length, 500, 'every request, refused or not, has its record');
    const total = recs.reduce((s, r) => s + BigInt(r.charge_nanos), 0n);
    assert.ok(total <= USD, `total charged ${total} nanos <= 1 USD`);
    for (const r of recs.filter((r) => r.status === 402)) assert.equal(BigInt(r.charge_nanos), 0n);
    // the burst refused what its worst cases could not cover; what they did
    // not use is free again: requests one at a time reach the cap itself
    let served = 0;
    for (const maxTokens of [380, 10]) {
      for (let i = 0; i < 200; i++) {
        const r = await call(KEYS.a, { stream: false, maxTokens });
        if (r.status === 402) break;
        assert.equal(r.status, 200);
        served++;
      }
    }
    const after = await recordsOf('ca', 500 + served + 2);
    const spent = after.reduce((s, r) => s + BigInt(r.charge_nanos), 0n);
    assert.ok(spent <= USD, `total charged ${spent} nanos <= 1 USD`);
    // the last refusal: less was left than a 10-token request's worst case (under 0.001)
    assert.ok(spent > USD - 1000000n, `the cap was reached, not just approached: ${spent}`);
    // the wallet's ledger and the live account agree with the records
    const w = await until(async () => {
      const v = await wallet('ca');
      return nanos(v.charge) === spent ? v : null;
    }, { what: 'the ledger has burned every record' });
    assert.equal(nanos(w.live.charge), spent);
    assert.equal(nanos(w.live.reserved), 0n, 'nothing stays reserved');
  });

  test('two customers at once share nothing: one at its cap, the other served in full', async () => {
    const heavy = Array.from({ length: 150 }, (_, i) => call(KEYS.b, { stream: i % 2 === 0, maxTokens: 380 }));
    const light = Array.from({ length: 20 }, () => call(KEYS.e, { stream: false, maxTokens: 20 }));
    const [h, l] = await Promise.all([Promise.all(heavy), Promise.all(light)]);
    assert.ok(h.some((r) => r.status === 402), 'the heavy customer reached its cap');
    assert.deepEqual(l.map((r) => r.status), Array(20).fill(200), 'the light one was never refused');
    const recs = await recordsOf('cb', 150);
    assert.ok(recs.reduce((s, r) => s + BigInt(r.charge_nanos), 0n) <= USD);
  });
});

describe('credits without overage', () => {
  test('run out: 402 through the SDK, with the balance and how to top up; a top-up brings them back', async () => {
    const client = gw.client(KEYS.c);
    let served = 0, err;
    for (let i = 0; i < 50 && !err; i++) {
      try {
        await client.chat.completions.create({ model: 'fast', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
        served++;
      } catch (e) {
        err = e;
      }
    }
    assert.ok(served >= 1, 'the included credit served something');
    assert.equal(err?.status, 402);
    assert.equal(err.code, 'credits_exhausted');
    assert.equal(err.type, 'insufficient_quota');
    assert.match(err.message, /Customer 'cc' has no credits left/);
    assert.match(err.message, /plan 'tiny' includes 1 credits/);
    assert.match(err.message, /POST \/admin\/v1\/customers\/cc\/topups/);

    // bad top-ups are refused with the field named
    for (const [body, re] of [[{ credits: '0' }, /credits: must be more than 0/],
                              [{ credits: 'lots' }, /credits/], [{ credits: '5', kind: 'gift' }, /kind/],
                              [{ credits: '5', expires: '2001-01-01' }, /expires: must be in the future/],
                              [{ credits: '5', kind: 'promo', paid: '1.00' }, /promotional/],
                              [{ credits: '5', colour: 'red' }, /unknown member/]]) {
      const r = await admin('/admin/v1/customers/cc/topups', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.match(r.body.error.message, re);
    }
    const low = await admin('/admin/v1/customers/cc/topups', { credits: '2', paid: '0.10', priority: 1, memo: 'first' });
    assert.equal(low.status, 201, JSON.stringify(low.body));
    const soon = await admin('/admin/v1/customers/cc/topups', { credits: '3', kind: 'promo', expires: '2099-01-01' });
    assert.equal(soon.status, 201);
    // the next requests are served at once: the grant is live before the
    // answer; a few use up what was left of the included credit
    for (let i = 0; i < 5; i++) {
      const r = await client.chat.completions.create({ model: 'fast', max_tokens: 5, messages: [{ role: 'user', content: 'hi' }] });
      assert.ok(r.choices[0].message.content);
    }
    // burn order: included first, then priority 1 before the promo
    const w = await until(async () => {
      const v = await wallet('cc');
      return nanos(v.grants_used) > 0n ? v : null;
    }, { what: 'a burn from grants' });
    assert.equal(nanos(w.included_used), USD, 'the included credit is used up first');
    const byId = Object.fromEntries(w.grants.map((g) => [g.id, g]));
    assert.ok(nanos(byId[low.body.grant.id].left) < 2n * USD, 'the priority grant burns next');
    assert.equal(nanos(byId[soon.body.grant.id].left), 3n * USD, 'the other is untouched');
    assert.equal(nanos(w.overage_credits), 0n, 'no overage without an overage price');
  });

  test('a grant stops covering requests at its expiry instant', async () => {
    const first = await call(KEYS.p, { stream: false, maxTokens: 5 });
    assert.equal(first.status, 402, 'no credits at all yet');
    // whole seconds, at least two ahead
    const at = new Date(Math.ceil(Date.now() / 1000) * 1000 + 3000);
    const expires = at.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const g = await admin('/admin/v1/customers/cp/topups', { credits: '50', kind: 'promo', expires });
    assert.equal(g.status, 201, JSON.stringify(g.body));
    assert.equal(g.body.grant.expires, expires);
    assert.equal((await call(KEYS.p, { stream: false, maxTokens: 5 })).status, 200, 'covered before the instant');
    await sleep(Math.max(0, at.getTime() - Date.now()) + 50);
    const late = await call(KEYS.p, { stream: false, maxTokens: 5 });
    assert.equal(late.status, 402, 'not at or after it');
    assert.match(JSON.parse(late.text).error.message, /its grants hold 0,/);
  });

  test('a top-up during load: requests start passing, no grant is overdrawn, no overage', async () => {
    let stop = false;
    const statuses = [];
    const client = async () => {
      while (!stop) statuses.push((await call(KEYS.p2, { stream: false, maxTokens: 20 })).status);
    };
    const load = Array.from({ length: 8 }, client);
    await sleep(ms(200));
    const g = await admin('/admin/v1/customers/cp2/topups', { credits: '3', paid: '0.003' });
    assert.equal(g.status, 201);
    await until(() => statuses.slice(-20).filter((x) => x === 402).length >= 20 && statuses.includes(200),
                { what: 'the grant spent and the requests refused again', timeout: ms(10000) });
    stop = true;
    await Promise.all(load);
    assert.ok(statuses.filter((x) => x === 200).length > 0);
    assert.deepEqual([...new Set(statuses)].sort(), [200, 402]);
    const recs = await recordsOf('cp2', statuses.length);
    const credits = recs.reduce((s, r) => s + BigInt(r.credits_nanos), 0n);
    assert.ok(credits <= 3n * USD, `never more than the grant: ${credits}`);
    const w = await until(async () => {
      const v = await wallet('cp2');
      return nanos(v.grants_used) === credits ? v : null;
    }, { what: 'the ledger has burned every record' });
    assert.equal(nanos(w.overage_credits), 0n);
    assert.ok(nanos(w.grants[0].left) >= 0n);
  });

  test('a model outside the plan is refused with the ones it includes', async () => {
    const e = await sdkError(() => gw.client(KEYS.c).chat.completions.create(
      { model: 'premium', messages: [{ role: 'user', content: 'hi' }] }), 403);
    assert.equal(e.code, 'model_not_in_plan');
    assert.match(e.message, /does not include model `premium`; it includes: fast/);
  });
});

describe('degrade and streams at the limit', () => {
  test('past its included credits, premium is served by fast and the record says degraded', async () => {
    const first = await call(KEYS.d, { model: 'premium', maxTokens: 50, id: rid('deg') });
    assert.equal(first.status, 200);
    const later = [];
    for (let i = 0; i < 3; i++) later.push(await call(KEYS.d, { model: 'premium', maxTokens: 20, id: rid('deg') }));
    const recs = await recordsOf('cd', 4);
    const byRid = Object.fromEntries(recs.map((r) => [r.rid, r]));
    assert.equal(byRid[first.id].offering, 'sim/premium');
    assert.equal(byRid[first.id].route, 'primary');
    for (const r of later) {
      assert.equal(byRid[r.id].model, 'premium', 'the model asked for stays on the record');
      assert.equal(byRid[r.id].offering, 'sim/fast');
      assert.equal(byRid[r.id].route, 'degraded');
    }
  });

  test('a stream that outgrows the cap is ended cleanly, billed for what was sent', async () => {
    // plan streamcap: 0.004 USD a period; a stream without max_tokens holds
    // 20 tokens (0.0008 USD of output) and grows its hold as it goes, until
    // the cap leaves no room for the next event
    let cut;
    for (let i = 0; i < 10 && !cut; i++) {
      const r = await call(KEYS.s, { stream: true, content: `a stream to cut ${i}` });
      if (r.status !== 200) break;
      if (events(r.text).at(-2)?.tollgate) cut = r;
    }
    assert.ok(cut, 'a stream was cut at the cap');
    const ev = events(cut.text);
    assert.equal(ev.at(-1), '[DONE]');
    assert.equal(ev.at(-2).choices[0].finish_reason, 'length');
    assert.match(ev.at(-2).tollgate.message, /customer 'cs' reached what plan 'streamcap' allows/);
    assert.match(cut.text, /\n: tollgate charge=\d+\.\d{9}[^\n]*\n\ndata: \[DONE\]\n\n$/,
                 'the charge comment, then [DONE]');
    const rec = (await gw.records(1, { args: ['--rid', cut.id] }))[0];
    assert.equal(rec.outcome, 'partial');
    assert.equal(rec.estimated, true);
    const sent = ev.filter((e) => e !== '[DONE]' && !e.tollgate).length;
    assert.equal(rec.completion_tokens, sent, 'billed for the events that were sent');
    assert.ok(sent > 20, `the hold grew past its first 20 tokens (${sent} events)`);
    const all = await recordsOf('cs', 1);
    const total = all.reduce((s, r) => s + BigInt(r.charge_nanos), 0n);
    assert.ok(total <= 4000000n, `the cap held: ${total}`);
    assert.ok(total > 3000000n, `and the stream used most of it: ${total}`);
  });
});

describe('rate limits', () => {
  test('rpm: the fourth request in a minute gets 429 with an honest Retry-After', async () => {
    const rs = [];
    for (let i = 0; i < 4; i++) rs.push(await call(KEYS.r, { stream: false, maxTokens: 5 }));
    assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 429]);
    const e = JSON.parse(rs[3].text).error;
    assert.equal(e.code, 'rate_limit_exceeded');
    assert.equal(e.type, 'requests');
    assert.match(e.message, /Rate limit of customer 'cr' reached: 3 requests per minute/);
    const ra = Number(rs[3].headers.get('retry-after'));
    assert.ok(ra >= 59 && ra <= 61, `Retry-After is the minute's remainder: ${ra}`);
  });

  test('tpm per key: a request that could never fit is a 400, not a 429', async () => {
    const r = await call(KEYS.r, { stream: false, maxTokens: 5000 });
    assert.equal(r.status, 400);
    const e = JSON.parse(r.text).error;
    assert.equal(e.code, 'request_over_rate_limit');
    assert.match(e.message, /more than the tokens per minute limit of key 'r' \(2000\)/);
  });
});

describe('concurrency limit', () => {
  test('a third request at once gets 429; once one ends, the next passes', async () => {
    const streams = [0, 1].map(() => call(KEYS.q, { stream: true, content: 'a long answer please' }));
    await sleep(ms(30));
    const third = await call(KEYS.q, { stream: false, maxTokens: 5 });
    assert.equal(third.status, 429);
    assert.match(JSON.parse(third.text).error.message, /customer 'cq' reached: 2 requests at once/);
    assert.equal(third.headers.get('retry-after'), '1');
    assert.deepEqual((await Promise.all(streams)).map((r) => r.status), [200, 200]);
    assert.equal((await call(KEYS.q, { stream: false, maxTokens: 5 })).status, 200);
  });
});

describe('agent runs', () => {
  const step = (key, run, extra = {}) => gw.post('/v1/chat/completions',
    { model: 'fast', max_tokens: 10, messages: [{ role: 'user', content: `step of ${run}` }] },
    { key, headers: { 'X-Tollgate-Run': run, 'X-Tollgate-Workflow': 'research', ...extra } });

  test('max_steps: the fourth step of a run is refused, another run is not; the steps are on record', async () => {
    const run = rid('run');
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await step(KEYS.w, run)).status);
    assert.deepEqual(statuses, [200, 200, 200, 403]);
    const r = await step(KEYS.w, run);
    const e = (await r.json()).error;
    assert.equal(e.code, 'run_step_limit');
    assert.equal(e.param, 'X-Tollgate-Run');
    assert.match(e.message, new RegExp(`Run '${run}' of customer 'cw' has taken 3 steps, the most the plan 'agents' allows`));
    assert.equal((await step(KEYS.w, rid('run'))).status, 200, 'a new run starts afresh');
    // the steps, by the CLI and the admin API
    const recs = await gw.records(5, { args: ['--run', run] });
    assert.equal(recs.length, 5);
    assert.deepEqual(recs.map((x) => x.status).sort(), [200, 200, 200, 403, 403]);
    assert.ok(recs.every((x) => x.run === run && x.workflow === 'research'));
    const a = await admin(`/admin/v1/runs/${run}?customer=cw`);
    assert.equal(a.status, 200, JSON.stringify(a.body));
    assert.equal(a.body.steps, 3);
    assert.equal(a.body.requests, 5);
    assert.equal(a.body.live.steps, 3);
    assert.equal(a.body.usage.records.length, 5);
    assert.equal(nanos(a.body.cost), recs.reduce((s, x) => s + BigInt(x.cost_nanos), 0n));
    assert.equal((await admin(`/admin/v1/runs/${run}`)).status, 400, 'a run is per customer');
    assert.equal((await admin(`/admin/v1/runs/nope?customer=cw`)).status, 404);
  });

  test("max_cost from the app: the step after the run's cost reaches it is refused", async () => {
    const run = rid('costly');
    let refused;
    for (let i = 0; i < 40 && !refused; i++) {
      const r = await step(KEYS.x, run);
      if (r.status === 403) refused = (await r.json()).error;
      else assert.equal(r.status, 200);
    }
    assert.ok(refused, 'the cost limit refused a step');
    assert.equal(refused.code, 'run_cost_limit');
    assert.match(refused.message, /past the 0\.002000000 USD the app 'app' allows a run/);
    const a = await until(async () => {
      const v = await admin(`/admin/v1/runs/${run}?customer=cx`);
      return nanos(v.body.cost) >= 2000000n ? v : null;
    }, { what: 'the run at its cost limit in the store' });
    assert.ok(nanos(a.body.live.cost) >= 2000000n, 'the live count had reached the limit');
    assert.equal(nanos(a.body.live.cost), nanos(a.body.cost));
    const rep = gw.report(['--by', 'workflow', '--customer', 'cx', '--app', 'app']);
    assert.ok(rep.rows.some((row) => row.workflow === 'research' && row.requests >= a.body.requests));
  });

  test('a restart keeps counting a run', async () => {
    const run = rid('restart');
    for (let i = 0; i < 2; i++) assert.equal((await step(KEYS.w, run)).status, 200);
    await gw.records(2, { args: ['--run', run] });
    await gw.restart();
    assert.equal((await step(KEYS.w, run)).status, 200);
    assert.equal((await step(KEYS.w, run)).status, 403, 'the two steps before the restart still count');
  });
});

describe('wallets from the command line', () => {
  test('tollgate topup reaches the running gateway; tollgate wallet shows it', async () => {
    const before = await wallet('cc');
    const t = run(['topup', '--config', gw.configPath, '--customer', 'cc', '--credits', '7', '--promo',
                   '--memo', 'from the cli']);
    assert.equal(t.code, 0, t.stderr);
    const id = t.stdout.match(/^(g_[0-9a-f]{32}): 7\.000000000 credits \(promo\)/m)[1];
    const w = await until(async () => {
      const v = await wallet('cc');
      return nanos(v.live.grants_left) === nanos(before.live.grants_left) + 7n * USD ? v : null;
    }, { what: 'the live account has the new grant', timeout: ms(5000) });
    assert.ok(w.grants.some((g) => g.id === id && g.memo === 'from the cli'));
    const json = JSON.parse(run(['wallet', '--config', gw.configPath, '--customer', 'cc', '--format', 'json']).stdout);
    assert.ok(json.grants.some((g) => g.id === id));
    const table = run(['wallet', '--config', gw.configPath, '--customer', 'cc']);
    assert.match(table.stdout, /customer cc of app app, plan tiny; period \d{4}-\d{2}/);
    assert.match(table.stdout, new RegExp(`${id}\\s+promo\\s+7\\s+7`));
    const bad = run(['topup', '--config', gw.configPath, '--customer', 'nobody', '--credits', '1']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no customer 'nobody'/);
  });

  test('every wallet transaction sums to zero and no grant goes below zero', () => {
    const r = run(['wallet', '--config', gw.configPath, '--check']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^wallet ledger: \d+ transactions, every one sums to zero; \d+ grants, none below zero or above what it granted$/m);
  });
});
