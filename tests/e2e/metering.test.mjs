// Metering end to end: every request through the gateway becomes one usage
// record whose tokens match what the simulated provider billed, priced by
// the offering's prices and the app's margin, tagged as sent; the caller
// sees its charge; reports sum the records; bad attribution is refused.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  assertErrorShape, run, sdkError, sha256, startGateway, startSim, stopAll, thisMonth, until,
} from './lib.mjs';

after(stopAll);

const KEYS = {
  cust: 'sk-meter-customer-acme',
  beta: 'sk-meter-customer-beta',
  app: 'sk-meter-app-acme',
  other: 'sk-meter-app-other',
  bare: 'sk-meter-no-app',
  admin: 'sk-meter-admin',
};

// USD per 1M tokens. Each is a whole number of nanos per token, so the
// expected cost of a request is exact: tokens x nanos-per-token.
const PRICES = {
  'sim/fast': { input: '0.15', output: '0.60' },
  'sim/premium': { input: '2.50', cached_input: '1.25', output: '10.00', request: '0.001' },
  'sim/embed': { input: '0.02' },
};
const nanosPerToken = (usd) => BigInt(Math.round(Number(usd) * 1000)); // "0.15" -> 150n (exact here)
const MARKUP_BPS = 2500n;
const FEE_BPS = 1000n;

/** round-half-up(v * bps / 10000) for v >= 0, in BigInt. */
const bps = (v, b) => (v * b * 2n + 10000n) / 20000n;

/** prompt includes cached (OpenAI's convention); a kind without a price bills as input. */
function expectedCost(offering, prompt, completion, cached = 0) {
  const p = PRICES[offering];
  let c = BigInt(prompt - cached) * nanosPerToken(p.input) +
    BigInt(cached) * nanosPerToken(p.cached_input ?? p.input) +
    BigInt(completion) * nanosPerToken(p.output ?? '0');
  if (p.request) c += BigInt(Math.round(Number(p.request) * 1e9));
  return c;
}

let sim;
let gw;

function config() {
  return {
    providers: [{ name: 'sim', base_url: sim.baseURL, forward_headers: ['X-Sim-Cached-Tokens'] }],
    offerings: Object.entries(PRICES).map(([id, price]) => ({
      id, provider: 'sim', model: { 'sim/fast': 'sim-fast', 'sim/premium': 'sim-premium', 'sim/embed': 'text-embedding-3-small' }[id],
      price,
    })),
    models: [
      { name: 'fast', offerings: ['sim/fast'] },
      { name: 'premium', offerings: ['sim/premium'] },
      { name: 'embed', offerings: ['sim/embed'] },
    ],
    plans: [{ id: 'pro', overage: '0.01' }], // pay as you go: credits counted, none refused
    apps: [
      {
        id: 'acme-app',
        margin: { markup_bps: Number(MARKUP_BPS), platform_fee_bps: Number(FEE_BPS), units: { report: '0.40' } },
        show_cost: true,
      },
      { id: 'other-app', create_customers: true, default_plan: 'pro' },
    ],
    customers: [
      { id: 'acme', app: 'acme-app', plan: 'pro' },
      { id: 'beta', app: 'acme-app' },
      { id: 'zed', app: 'other-app' },
    ],
    keys: [
      { id: 'cust', sha256: sha256(KEYS.cust), customer: 'acme' },
      { id: 'beta', sha256: sha256(KEYS.beta), customer: 'beta' },
      { id: 'app', sha256: sha256(KEYS.app), app: 'acme-app' },
      { id: 'other', sha256: sha256(KEYS.other), app: 'other-app' },
      { id: 'bare', sha256: sha256(KEYS.bare) },
      { id: 'admin', sha256: sha256(KEYS.admin), admin: true },
    ],
    metering: { flush_ms: 20 },
  };
}

before(async () => {
  sim = await startSim({ seed: 5, conf: { completion_tokens: { min: 3, max: 40 } } });
  gw = await startGateway(config());
});

let seq = 0;
const rid = (tag) => `${tag}-${process.pid}-${++seq}`;

/** Drains a stream; returns the concatenated text. */
async function drain(stream) {
  let text = '';
  for await (const c of stream) text += c.choices?.[0]?.delta?.content ?? c.choices?.[0]?.text ?? '';
  return text;
}

describe('usage records', () => {
  test('tokens and cost of every request, streams included, match what the sim billed', async () => {
    const client = gw.client(KEYS.cust);
    const sent = [];
    const msgs = (i) => [{ role: 'user', content: `question number ${i} ${'about margins '.repeat(i % 5)}` }];
    for (let i = 0; i < 24; i++) {
      const id = rid('match');
      const model = i % 3 === 0 ? 'premium' : 'fast';
      const opts = { headers: { 'X-Request-Id': id } };
      switch (i % 4) {
        case 0:
          await client.chat.completions.create({ model, messages: msgs(i) }, opts);
          break;
        case 1: // a stream whose client did not ask for usage: the gateway still meters it
          await drain(await client.chat.completions.create({ model, messages: msgs(i), stream: true }, opts));
          break;
        case 2:
          await drain(await client.chat.completions.create(
            { model, messages: msgs(i), stream: true, stream_options: { include_usage: true } }, opts));
          break;
        case 3:
          await client.completions.create({ model, prompt: `complete ${i}`, max_tokens: 7 + i }, opts);
          break;
      }
      sent.push({ id, offering: model === 'premium' ? 'sim/premium' : 'sim/fast' });
    }
    const eid = rid('match');
    await client.embeddings.create({ model: 'embed', input: ['one', 'two three'] }, { headers: { 'X-Request-Id': eid } });
    sent.push({ id: eid, offering: 'sim/embed' });

    const served = new Map((await (await fetch(`${sim.url}/sim/requests`)).json()).requests.map((r) => [r.id, r]));
    const recs = await gw.records(sent.length, { args: ['--customer', 'acme'] });
    const byRid = new Map(recs.map((r) => [r.rid, r]));
    for (const s of sent) {
      const r = byRid.get(s.id);
      const billed = served.get(s.id);
      assert.ok(r, `request ${s.id} has a usage record`);
      assert.ok(billed, `the sim served ${s.id}`);
      assert.equal(r.offering, s.offering);
      assert.equal(r.prompt_tokens, billed.prompt_tokens, `${s.id}: prompt tokens`);
      assert.equal(r.completion_tokens, billed.completion_tokens, `${s.id}: completion tokens`);
      assert.equal(r.estimated, false);
      assert.equal(r.outcome, 'completed');
      assert.equal(r.status, 200);
      const cost = expectedCost(s.offering, billed.prompt_tokens, billed.completion_tokens);
      const charge = cost + bps(cost, MARKUP_BPS);
      const fee = bps(charge, FEE_BPS);
      assert.equal(BigInt(r.cost_nanos), cost, `${s.id}: cost`);
      assert.equal(BigInt(r.charge_nanos), charge, `${s.id}: charge`);
      assert.equal(BigInt(r.fee_nanos), fee, `${s.id}: fee`);
      assert.equal(BigInt(r.margin_nanos), charge - cost - fee, `${s.id}: margin`);
      assert.equal(r.app, 'acme-app');
      assert.equal(r.customer, 'acme');
      assert.equal(r.plan, 'pro');
      assert.equal(r.key, 'cust');
      assert.ok(r.latency_us > 0);
    }
    assert.equal(recs.filter((r) => sent.some((s) => s.id === r.rid)).length, sent.length, 'no request twice');

    // the report's per-model sums equal the sim's own per-model totals
    const stats = await sim.stats();
    const rep = gw.report(['--period', thisMonth(), '--by', 'model', '--customer', 'acme']);
    for (const [model, upstream] of [['fast', 'sim-fast'], ['premium', 'sim-premium'], ['embed', 'text-embedding-3-small']]) {
      const row = rep.rows.find((x) => x.model === model);
      assert.ok(row, `report has a row for ${model}: ${JSON.stringify(rep.rows)}`);
      assert.equal(row.prompt_tokens, stats.models[upstream].prompt_tokens, `${model}: prompt tokens`);
      assert.equal(row.completion_tokens, stats.models[upstream].completion_tokens, `${model}: completion tokens`);
      assert.equal(row.requests, stats.models[upstream].requests);
    }
    const sum = (k) => rep.rows.reduce((a, x) => a + BigInt(x[k]), 0n);
    for (const k of ['cost_nanos', 'charge_nanos', 'margin_nanos', 'fee_nanos'])
      assert.equal(BigInt(rep.total[k]), sum(k), `total ${k} is the sum of the rows`);
    assert.equal(BigInt(rep.total.charge_nanos),
      BigInt(rep.total.cost_nanos) + BigInt(rep.total.margin_nanos) + BigInt(rep.total.fee_nanos));
  });

  test('cached prompt tokens are recorded apart and priced at the cached-input price, streams included', async () => {
    const client = gw.client(KEYS.cust);
    const sent = [];
    const msgs = [{ role: 'user', content: 'a long shared system prompt, then a short question' }];
    for (const [model, stream, want] of [
      ['premium', false, 5], ['premium', true, 7], ['premium', false, 100000], ['fast', false, 4], ['fast', true, 0],
    ]) {
      const id = rid('cached');
      const opts = { headers: { 'X-Request-Id': id, 'X-Sim-Cached-Tokens': String(want) } };
      if (stream) await drain(await client.chat.completions.create({ model, messages: msgs, stream: true }, opts));
      else await client.chat.completions.create({ model, messages: msgs }, opts);
      sent.push({ id, offering: `sim/${model}` });
    }
    const served = new Map((await (await fetch(`${sim.url}/sim/requests`)).json()).requests.map((r) => [r.id, r]));
    const byRid = await until(() => {
      const m = new Map(gw.usage(['--customer', 'acme']).map((r) => [r.rid, r]));
      return sent.every((s) => m.has(s.id)) ? m : null;
    }, { what: 'the cached-token requests in the ledger' });
    for (const s of sent) {
      const r = byRid.get(s.id);
      const billed = served.get(s.id);
      assert.ok(r && billed, `${s.id}: a record, and the sim served it`);
      assert.equal(r.cached_tokens, billed.cached_tokens, `${s.id}: cached tokens`);
      assert.equal(r.prompt_tokens, billed.prompt_tokens, `${s.id}: prompt tokens (cached included)`);
      assert.equal(r.estimated, false);
      const cost = expectedCost(s.offering, billed.prompt_tokens, billed.completion_tokens, billed.cached_tokens);
      assert.equal(BigInt(r.cost_nanos), cost, `${s.id}: cost`);
      assert.equal(BigInt(r.charge_nanos), cost + bps(cost, MARKUP_BPS), `${s.id}: charge`);
    }
    // the clamp to the prompt, and a cached token that costs less than an input one
    const all = byRid.get(sent[2].id);
    assert.equal(all.cached_tokens, all.prompt_tokens);
    assert.ok(BigInt(all.cost_nanos) < expectedCost('sim/premium', all.prompt_tokens, all.completion_tokens));
    assert.equal(byRid.get(sent[3].id).cached_tokens, 4, 'an offering without a cached price bills them as input');
  });

  test('tags land as sent: headers first, then the body\'s metadata and user', async () => {
    const id1 = rid('tags');
    const id2 = rid('tags');
    const r1 = await gw.post('/v1/chat/completions', {
      model: 'fast', messages: [{ role: 'user', content: 'hi' }], user: 'body-user',
      metadata: { workspace: 'ws-body', feature: 'body-feature', workflow: 'wf-1', run: 'run-9' },
    }, {
      key: KEYS.app,
      headers: { 'X-Request-Id': id1, 'X-Tollgate-Customer': 'beta', 'X-Tollgate-Feature': 'summarize' },
    });
    assert.equal(r1.status, 200, await r1.clone().text());
    const r2 = await gw.post('/v1/chat/completions', { model: 'fast', messages: [{ role: 'user', content: 'hi' }] }, {
      key: KEYS.cust,
      headers: {
        'X-Request-Id': id2, 'X-Tollgate-Workspace': 'ws 7', 'X-Tollgate-User': 'u@example.com',
        'X-Tollgate-Workflow': 'triage', 'X-Tollgate-Run': 'r-1', 'X-Tollgate-Unit': 'ticket',
        'X-Tollgate-Unit-Count': '3',
      },
    });
    assert.equal(r2.status, 200);
    const recs = await gw.records(1, { args: ['--rid', id1] });
    const a = recs[0];
    assert.equal(a.customer, 'beta');
    assert.equal(a.key, 'app');
    assert.equal(a.feature, 'summarize', 'the header wins over metadata');
    assert.equal(a.workspace, 'ws-body');
    assert.equal(a.user, 'body-user');
    assert.equal(a.workflow, 'wf-1');
    assert.equal(a.run, 'run-9');
    const b = (await gw.records(1, { args: ['--rid', id2] }))[0];
    assert.deepEqual([b.workspace, b.user, b.workflow, b.run, b.unit, b.unit_count],
      ['ws 7', 'u@example.com', 'triage', 'r-1', 'ticket', 3]);
  });
});

describe('what the caller sees', () => {
  test('a response carries its charge, and its cost when the app shows it', async () => {
    const id = rid('hdr');
    const { response } = await gw.client(KEYS.cust).chat.completions
      .create({ model: 'premium', messages: [{ role: 'user', content: 'price me' }] }, { headers: { 'X-Request-Id': id } })
      .withResponse();
    const charge = response.headers.get('x-tollgate-charge');
    const cost = response.headers.get('x-tollgate-cost');
    assert.match(charge, /^\d+\.\d{9}$/);
    assert.match(cost, /^\d+\.\d{9}$/);
    const rec = (await gw.records(1, { args: ['--rid', id] }))[0];
    assert.equal(charge, rec.charge);
    assert.equal(cost, rec.cost);
    assert.equal(response.headers.get('x-tollgate-credits'), rec.credits, 'a customer on a plan sees its credits');

    // other-app keeps the default: charge shown, cost not
    const r = await gw.post('/v1/chat/completions', { model: 'fast', messages: [{ role: 'user', content: 'x' }] },
      { key: KEYS.other, headers: { 'X-Tollgate-Customer': 'zed' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('x-tollgate-charge'), /^\d+\.\d{9}$/);
    assert.equal(r.headers.get('x-tollgate-cost'), null);
  });

  test('a stream ends with a comment that carries its charge, before [DONE]', async () => {
    const id = rid('sse');
    const r = await gw.post('/v1/chat/completions',
      { model: 'fast', messages: [{ role: 'user', content: 'stream me' }], stream: true },
      { key: KEYS.cust, headers: { 'X-Request-Id': id } });
    assert.equal(r.status, 200);
    const text = await r.text();
    const m = text.match(/\n: tollgate charge=(\d+\.\d{9}) cost=(\d+\.\d{9}) credits=(\d+\.\d{9})\n\ndata: \[DONE\]\n\n$/);
    assert.ok(m, `stream ends with the summary comment, then [DONE]: ${text.slice(-200)}`);
    const rec = (await gw.records(1, { args: ['--rid', id] }))[0];
    assert.equal(m[1], rec.charge);
    assert.equal(m[2], rec.cost);
    assert.equal(m[3], rec.credits);
    // plan pro's credit is 0.01 USD of charge: credits = charge x 100, in nano-credits
    assert.equal(BigInt(rec.credits_nanos), BigInt(rec.charge_nanos) * 100n);
  });

  test('a unit-priced request is charged the unit price, whatever its tokens cost', async () => {
    const one = rid('unit');
    const zero = rid('unit');
    for (const [id, count] of [[one, '1'], [zero, '0']]) {
      const r = await gw.post('/v1/chat/completions', { model: 'premium', messages: [{ role: 'user', content: 'make a report' }] },
        { key: KEYS.cust, headers: { 'X-Request-Id': id, 'X-Tollgate-Unit': 'report', 'X-Tollgate-Unit-Count': count } });
      assert.equal(r.status, 200);
    }
    const a = (await gw.records(1, { args: ['--rid', one] }))[0];
    assert.equal(a.charge, '0.400000000');
    assert.equal(BigInt(a.fee_nanos), bps(400000000n, FEE_BPS));
    const b = (await gw.records(1, { args: ['--rid', zero] }))[0];
    assert.equal(b.charge_nanos, 0);
    assert.ok(b.margin_nanos < 0, 'the unpaid step of a unit is a visible loss');
    assert.equal(BigInt(b.margin_nanos), -BigInt(b.cost_nanos));
  });
});

describe('bad attribution is refused in OpenAI\'s shape', () => {
  const chat = { model: 'fast', messages: [{ role: 'user', content: 'x' }] };
  const cases = [
    ['a tag of the wrong type', KEYS.cust, { ...chat, metadata: { feature: 5 } }, {}, 400, 'invalid_tag', 'metadata'],
    ['metadata that is not an object', KEYS.cust, { ...chat, metadata: 'feature' }, {}, 400, 'invalid_tag', 'metadata'],
    ['a body user that is not a string', KEYS.cust, { ...chat, user: 12 }, {}, 400, 'invalid_tag', 'user'],
    ['an over-long tag header', KEYS.cust, chat, { 'X-Tollgate-Feature': 'f'.repeat(129) }, 400, 'invalid_tag', 'X-Tollgate-Feature'],
    ['an over-long metadata tag', KEYS.cust, { ...chat, metadata: { workflow: 'w'.repeat(200) } }, {}, 400, 'invalid_tag', 'metadata'],
    ['a unit count without a unit', KEYS.cust, chat, { 'X-Tollgate-Unit-Count': '2' }, 400, 'invalid_tag', 'X-Tollgate-Unit-Count'],
    ['a unit count that is not a number', KEYS.cust, chat, { 'X-Tollgate-Unit': 'r', 'X-Tollgate-Unit-Count': '-1' }, 400, 'invalid_tag', 'X-Tollgate-Unit-Count'],
    ['a customer of another app', KEYS.app, chat, { 'X-Tollgate-Customer': 'zed' }, 403, 'customer_forbidden', 'X-Tollgate-Customer'],
    ['a customer key naming another customer', KEYS.cust, chat, { 'X-Tollgate-Customer': 'beta' }, 403, 'customer_forbidden', 'X-Tollgate-Customer'],
    ['a key of no app naming a customer', KEYS.bare, chat, { 'X-Tollgate-Customer': 'acme' }, 403, 'customer_forbidden', 'X-Tollgate-Customer'],
    ['an unknown customer', KEYS.app, chat, { 'X-Tollgate-Customer': 'nobody' }, 404, 'customer_not_found', 'X-Tollgate-Customer'],
  ];
  for (const [what, key, body, headers, status, code, param] of cases) {
    test(what, async () => {
      const id = rid('bad');
      const r = await gw.post('/v1/chat/completions', body, { key, headers: { ...headers, 'X-Request-Id': id } });
      assert.equal(r.status, status);
      const e = assertErrorShape(await r.json(), { code });
      assert.equal(e.param, param);
      assert.ok(e.message.length > 10);
      const served = (await (await fetch(`${sim.url}/sim/requests`)).json()).requests;
      assert.ok(!served.some((s) => s.id === id), 'a refused request never reaches the provider');
    });
  }

  test('the SDK raises the refusal', async () => {
    const e = await sdkError(() => gw.client(KEYS.app).chat.completions.create(chat,
      { headers: { 'X-Tollgate-Customer': 'zed' } }), 403);
    assert.match(e.message, /another app/);
  });

  test('an app that creates customers creates one on its first request', async () => {
    const id = rid('new');
    const r = await gw.post('/v1/chat/completions', chat,
      { key: KEYS.other, headers: { 'X-Request-Id': id, 'X-Tollgate-Customer': 'fresh-co' } });
    assert.equal(r.status, 200);
    const rec = (await gw.records(1, { args: ['--rid', id] }))[0];
    assert.deepEqual([rec.app, rec.customer, rec.plan], ['other-app', 'fresh-co', 'pro']);
    // it now belongs to other-app: acme-app's key may not bill it
    const r2 = await gw.post('/v1/chat/completions', chat, { key: KEYS.app, headers: { 'X-Tollgate-Customer': 'fresh-co' } });
    assert.equal(r2.status, 403);
    await r2.text();
  });
});

describe('reading usage over HTTP', () => {
  test('a customer key reads its own usage and no one else\'s', async () => {
    const p = thisMonth();
    const r = await gw.fetch(`/v1/usage?period=${p}&by=customer`, { headers: { Authorization: `Bearer ${KEYS.cust}` } });
    assert.equal(r.status, 200);
    const body = await r.json();
    assert.deepEqual(body.rows.map((x) => [x.app, x.customer]), [["acme-app", "acme"]], "only its own customer");
    const other = await gw.fetch(`/v1/usage?period=${p}&by=feature&customer=beta`,
      { headers: { Authorization: `Bearer ${KEYS.cust}` } });
    assert.equal(other.status, 403);
    assertErrorShape(await other.json());
    const anon = await gw.fetch(`/v1/usage?period=${p}&by=feature`);
    assert.equal(anon.status, 401);
    await anon.text();
  });

  test('/metrics shows the ledger keeping up', async () => {
    const m = await gw.metrics();
    const v = (name) => Number(m.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
    assert.ok(v('tollgate_usage_records_total') > 0);
    await until(async () => {
      const t = await gw.metrics();
      const n = (name) => Number(t.match(new RegExp(`^${name} (\\d+)$`, 'm'))?.[1]);
      return n('tollgate_ledger_committed_total') === n('tollgate_usage_records_total') && n('tollgate_ledger_queued') === 0;
    }, { what: 'the ledger to commit every record' });
    assert.equal(v('tollgate_ledger_failures_total'), 0);
  });

  test('the admin report equals the CLI report', async () => {
    const p = thisMonth();
    const r = await gw.fetch(`/admin/v1/reports?period=${p}&by=customer`, { headers: { Authorization: `Bearer ${KEYS.admin}` } });
    assert.equal(r.status, 200);
    const http = await r.json();
    assert.deepEqual(http, gw.report(['--period', p, '--by', 'customer']));
    const denied = await gw.fetch(`/admin/v1/reports?period=${p}&by=customer`, { headers: { Authorization: `Bearer ${KEYS.cust}` } });
    assert.equal(denied.status, 403);
    await denied.text();
    const bad = await gw.fetch(`/admin/v1/reports?period=${p}&by=colour`, { headers: { Authorization: `Bearer ${KEYS.admin}` } });
    assert.equal(bad.status, 400);
    assert.match(assertErrorShape(await bad.json()).message, /customer/);
  });
});

describe('the command line', () => {
  test('report in table, csv and json agree; bad flags exit 2 with a reason', () => {
    const p = thisMonth();
    const json = gw.report(['--period', p, '--by', 'feature']);
    const csv = gw.cli('report', ['--period', p, '--by', 'feature', '--format', 'csv']);
    assert.equal(csv.code, 0, csv.stderr);
    const lines = csv.stdout.trim().split('\n');
    assert.match(lines[0], /^kind,app,feature,requests,/);
    assert.equal(lines.length, json.rows.length + 2, 'a header, the rows and the total');
    const total = lines.at(-1).split(',');
    assert.equal(total[0], 'total');
    const header = lines[0].split(',');
    assert.equal(total[header.indexOf('charge')], json.total.charge);
    const table = gw.cli('report', ['--period', p, '--by', 'feature']);
    assert.equal(table.code, 0);
    assert.match(table.stdout, /TOTAL/);
    const bad = gw.cli('report', ['--by', 'colour']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /customer.*feature/s, 'an unknown --by lists the valid ones');
    const badPeriod = gw.cli('report', ['--period', 'last-month']);
    assert.equal(badPeriod.code, 2);
    assert.match(badPeriod.stderr, /YYYY-MM/);
    assert.equal(gw.cli('report', ['--frobnicate']).code, 2);
  });

  test('explain-price names the rule and its amounts add up', () => {
    const r = gw.cli('explain-price', ['--model', 'premium', '--customer', 'acme', '--prompt-tokens', '1000',
                                       '--completion-tokens', '200']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /offering\s+sim\/premium/);
    const amount = (name) => BigInt(r.stdout.match(new RegExp(`^${name}\\s+USD (\\d+)\\.(\\d{9})`, 'm')).slice(1).join(''));
    const cost = 1000n * 2500n + 200n * 10000n + 1000000n; // tokens x nanos per token + the per-request fee
    assert.equal(amount('cost'), cost);
    const charge = cost + bps(cost, MARKUP_BPS);
    assert.equal(amount('charge'), charge);
    assert.equal(amount('charge'), amount('cost') + amount('margin') + amount('fee'));
    const bad = gw.cli('explain-price', ['--model', 'premium', '--customer', 'nobody']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /no customer 'nobody'/);
  });

  test('explain-price --rid shows the rule and amounts of a recorded request, and whether the config still agrees', async () => {
    const id = rid('explain');
    const r = await gw.post('/v1/chat/completions', { model: 'premium', messages: [{ role: 'user', content: 'two reports' }] },
      { key: KEYS.cust, headers: { 'X-Request-Id': id, 'X-Tollgate-Feature': 'quarterly', 'X-Tollgate-Unit': 'report',
                                   'X-Tollgate-Unit-Count': '2' } });
    assert.equal(r.status, 200);
    const rec = (await gw.records(1, { args: ['--rid', id] }))[0];
    const out = gw.cli('explain-price', ['--rid', id]);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, new RegExp(`^record\\s+${rec.id} \\(request ${id}, completed`, 'm'));
    assert.match(out.stdout, /customer "acme" plan "pro" feature "quarterly" unit "report" x 2/);
    assert.match(out.stdout, new RegExp(`^recorded\\s+rule app: cost ${rec.cost}, charge ${rec.charge}, margin ${rec.margin}, fee ${rec.fee}$`, 'm'));
    assert.match(out.stdout, /^rule\s+app acme-app's own margin: it has no overrides$/m);
    assert.match(out.stdout, new RegExp(`^charge\\s+USD ${rec.charge.replace('.', '\\.')}$`, 'm'));
    assert.equal(rec.charge, '0.800000000', 'two reports at 0.40');
    assert.match(out.stdout, /^same amounts as recorded$/m);

    // the same store under a config whose unit price changed since
    const changed = structuredClone(gw.config);
    changed.apps[0].margin.units.report = '0.50';
    const file = path.join(gw.dataDir, '..', 'changed.yaml');
    writeFileSync(file, gw.yaml(changed));
    const now = run(['explain-price', '--config', file, '--rid', id]);
    assert.equal(now.code, 0, now.stderr);
    assert.match(now.stdout, /^charge\s+USD 1\.000000000$/m);
    assert.match(now.stdout, /^DIFFERENT from the record: the configuration changed/m);

    const none = gw.cli('explain-price', ['--rid', 'no-such-request']);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no usage record has request id no-such-request/);
    const mixed = gw.cli('explain-price', ['--rid', id, '--model', 'fast']);
    assert.equal(mixed.code, 2);
    assert.match(mixed.stderr, /--model: the record gives it/);
  });

  test('migrate creates a store, and says when there is nothing to do', () => {
    const dir = `${gw.dataDir}-migrate`;
    const first = run(['migrate', '--data-dir', dir]);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /schema version \d+ \([1-9]\d* migrations? applied now\)/);
    const again = run(['migrate', '--data-dir', dir]);
    assert.match(again.stdout, /\(0 migrations applied now\)/);
    const missing = run(['report', '--data-dir', `${dir}-none`]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /migrate|no such|not found/i);
  });
});

describe('durability', () => {
  test('records survive a restart, and projected journal segments are removed', async () => {
    const before = gw.usage().map((r) => r.id).sort();
    assert.ok(before.length > 30);
    await gw.restart();
    assert.deepEqual(gw.usage().map((r) => r.id).sort(), before, 'the same records, none twice');
    const segments = () => readdirSync(path.join(gw.dataDir, 'journal')).filter((f) => f.endsWith('.tgj'));
    assert.deepEqual(segments(), [], 'a clean stop leaves no journal segment behind');
    const id = rid('restart');
    const r = await gw.post('/v1/chat/completions', { model: 'fast', messages: [{ role: 'user', content: 'again' }] },
      { key: KEYS.cust, headers: { 'X-Request-Id': id } });
    assert.equal(r.status, 200);
    assert.equal((await gw.records(1, { args: ['--rid', id] })).length, 1);
  });
});
