// Closing the month end to end (issue 6): a month of traffic through the
// real gateway and the simulated provider, with the official openai SDK,
// then `tollgate close-period` and the admin API's close. The documents
// are checked against what they are made from, never against an answer
// the binary gave before: every invoice line is its exact amount rounded
// half-up to cents (computed here in BigInt nanos) and the lines add up;
// metered customers pay their records' charge; fees and allowances are
// prorated by day over the plan history (a plan change through the admin
// API, an app-created customer); credits split into allowance, grants (as
// the wallet burned them) and overage at the plan's price; statements
// add up in nanos and cents and to the invoices; settlements equal the
// usage records per offering, and the sim's own counters. A close is
// repeatable (twice: the same documents), survives kill -9 in the middle
// (the same documents as an uninterrupted close of a copy), picks up a
// record the journal replays after a crash, exports to files that agree
// with the JSON, and refuses bad input in OpenAI's error shape.
//
// The period is the month the tests run in (records carry real time): it
// cannot be finalized yet, which the refusal checks; finalized periods and
// late usage are covered by tests/unit/test_close.c.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { cpSync, existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  BIN, assertErrorShape, childEnv, ms, run, sha256, sleep, startGateway, startSim, stopAll, tempDir,
  thisMonth, toYaml, until,
} from './lib.mjs';

after(stopAll);

const P = thisMonth();
const DAY = 86400000;
const USD = 1000000000n;
const CENT = 10000000n;

const KEYS = {
  acme: 'sk-close-acme', bolt: 'sk-close-bolt', calm: 'sk-close-calm',
  shop: 'sk-close-shop-app', market: 'sk-close-market-app', admin: 'sk-close-admin',
};

// what the configuration says, for the expectations (nanos, nano-credits)
const PLAN = {
  pro: { fee: 30n * USD, included: 100n * USD, overage: 500000n /* 0.0005 */ },
  basic: { fee: 5n * USD, included: 1000000n * USD }, // no overage: a hard stop
  starter: { fee: 10n * USD, included: 50n * USD, overage: 300000n /* 0.0003 */ },
};
const REPORT_PRICE = 400000000n; // shop's units: {report: "0.40"}
const REPORT_CREDITS = 3n * USD; // pro's unit_credits: {report: 3}
const TOPUP = { credits: 500n * USD, paid: 1250000000n };

// ---- money, in BigInt nanos --------------------------------------------------

/** "12.345678900" or "-0.050000000" -> nanos. */
function N(s) {
  const m = /^(-?)(\d+)\.(\d{9})$/.exec(s);
  assert.ok(m, `a money string with 9 decimals: ${JSON.stringify(s)}`);
  const v = BigInt(m[2]) * USD + BigInt(m[3]);
  return m[1] ? -v : v;
}

/** round-half-up(v / d) * d, away from zero below 0. */
function roundTo(v, d) {
  const a = v < 0n ? -v : v;
  const r = ((a + d / 2n) / d) * d;
  return v < 0n ? -r : r;
}
const cents = (v) => roundTo(v, CENT);

/** round-half-up(a * b / d), away from zero below 0. */
function muldiv(a, b, d) {
  const p = a * b;
  const q = ((p < 0n ? -p : p) + d / 2n) / d;
  return p < 0n ? -q : q;
}

const sumOf = (xs, f) => xs.reduce((s, x) => s + f(x), 0n);
const big = (f) => (x) => BigInt(x[f]);

/** "$1,234.56" / "-$0.05" from whole-cent nanos, as a person writes it. */
function dollars(v) {
  const neg = v < 0n;
  const c = (neg ? -v : v) / CENT;
  const whole = (c / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${neg ? '-' : ''}$${whole}.${(c % 100n).toString().padStart(2, '0')}`;
}

// ---- the period's days ---------------------------------------------------------

const floorDay = (t) => Math.floor(t / DAY) * DAY;
function periodBounds(name = P) {
  const [y, m] = name.split('-').map(Number);
  return { start: Date.UTC(y, m - 1, 1), end: Date.UTC(y, m, 1) };
}
const { start: P_START, end: P_END } = periodBounds();
const DAYS_TOTAL = BigInt((P_END - P_START) / DAY);
/** Days from the UTC day of t to the period's end (the days a plan set at t is billed). */
const daysFrom = (t) => BigInt((P_END - floorDay(t)) / DAY);

// ---- CSV ---------------------------------------------------------------------------

/** RFC 4180: rows of fields (quoted fields may hold , " CR LF). */
function parseCsv(text) {
  const rows = [];
  let row = [], field = '', i = 0, quoted = false;
  while (i < text.length) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') { field += '"'; i += 2; continue; }
      if (c === '"') { quoted = false; i++; continue; }
      field += c; i++; continue;
    }
    if (c === '"' && field === '') { quoted = true; i++; continue; }
    if (c === ',') { row.push(field); field = ''; i++; continue; }
    if (c === '\r' && text[i + 1] === '\n') i++;
    if (text[i] === '\n') { row.push(field); rows.push(row); row = []; field = ''; i++; continue; }
    field += c; i++;
  }
  if (field !== '' || row.length) { row.push(field); rows.push(row); }
  return rows;
}

/** CSV text as objects by the header's names; every row as wide as the header. */
function csvObjects(text) {
  const [head, ...rows] = parseCsv(text);
  return rows.map((r) => {
    assert.equal(r.length, head.length, `a CSV row as wide as its header: ${JSON.stringify(r)}`);
    return Object.fromEntries(head.map((h, i) => [h, r[i]]));
  });
}

// ---- the binary ------------------------------------------------------------------------

function cliOk(args, what = args.join(' ')) {
  const r = run(args, { timeout: ms(60000) });
  assert.equal(r.code, 0, `tollgate ${what} exited ${r.code} (signal ${r.signal}):\n${r.stderr}`);
  return r.stdout;
}
const cliJson = (args) => JSON.parse(cliOk([...args, '--format', 'json']));

/** `tollgate close-period P --config FILE --format json`, parsed. */
const closeCli = (config) => cliJson(['close-period', P, '--config', config]);

/** The documents without the instant they were made. */
function sansClosed(d) {
  const { closed, unchanged, ...rest } = d;
  assert.match(closed, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/);
  assert.equal(typeof unchanged, 'boolean');
  return rest;
}

/** Every record of the store (`tollgate usage --format json`). */
function usageOf(config) {
  return JSON.parse(cliOk(['usage', '--config', config, '--format', 'json'])).records;
}

// ---- the checks every close must pass ---------------------------------------------------

const acctKey = (app, customer) => `${app}\u0000${customer}`;

function groupBy(xs, f) {
  const m = new Map();
  for (const x of xs) {
    const k = f(x);
    if (!m.has(k)) m.set(k, []);
    m.get(k).push(x);
  }
  return m;
}

/**
 * Checks the documents d (a close's JSON) against the usage records recs
 * of the period: lines, invoices, statements and settlements add up, in
 * nanos and cents, and equal the records' sums. Returns the invoices by
 * customer.
 */
function checkDocs(d, recs) {
  assert.equal(d.period, P);
  assert.equal(d.status, 'draft');
  assert.equal(d.finalized, null, 'a draft has no finalized time');
  const byAcct = groupBy(recs, (r) => acctKey(r.app, r.customer));
  const invById = new Map();
  const invByCustomer = {};
  let invTotal = 0n;

  // invoices: every line is its exact amount rounded half-up to cents
  for (const inv of d.invoices) {
    const what = `invoice ${inv.id} (${inv.customer})`;
    assert.match(inv.id, new RegExp(`^INV-${P}-\\d{5}$`));
    assert.equal(inv.period, P);
    assert.equal(inv.status, 'draft');
    assert.deepEqual([Date.parse(inv.start), Date.parse(inv.end)], [P_START, P_END], `${what}: the period's bounds`);
    invById.set(inv.id, inv);
    invByCustomer[inv.customer] = inv;
    inv.lines.forEach((l, i) => {
      assert.equal(l.n, i + 1, `${what}: lines are numbered from 1`);
      assert.equal(N(l.amount), cents(N(l.exact)), `${what} line ${l.n} (${l.description}): amount = exact rounded half-up`);
      assert.equal(N(l.amount) % CENT, 0n);
      assert.ok(l.records >= 0);
    });
    assert.equal(N(inv.subtotal), sumOf(inv.lines, (l) => N(l.amount)), `${what}: the lines add up to the subtotal`);
    assert.equal(N(inv.exact), sumOf(inv.lines, (l) => N(l.exact)), `${what}: exact is the lines' exact sum`);
    assert.equal(N(inv.tax), 0n, 'tax is not computed');
    assert.equal(N(inv.total), N(inv.subtotal) + N(inv.tax));
    invTotal += N(inv.total);

    const mine = byAcct.get(acctKey(inv.app, inv.customer)) ?? [];
    assert.equal(inv.usage.records, mine.length, `${what}: its usage records`);
    assert.equal(N(inv.usage.charge), sumOf(mine, big('charge_nanos')), `${what}: usage charge`);
    assert.equal(N(inv.usage.cost), sumOf(mine, big('cost_nanos')), `${what}: usage cost`);
    assert.equal(N(inv.usage.fee), sumOf(mine, big('fee_nanos')), `${what}: usage fee`);
    assert.equal(N(inv.usage.credits), sumOf(mine, big('credits_nanos')), `${what}: usage credits`);

    // usage lines: the records made without a plan first, billed at their
    // charge; then those made on a plan, 0 USD, their credits billed by the
    // credit lines (included, grants, overage)
    const kinds = (k) => inv.lines.filter((l) => l.kind === k);
    const usageLines = inv.lines.filter((l) => l.kind === 'usage' || l.kind === 'unit');
    const blocks = [['metered', mine.filter((r) => !r.plan)], ['on a plan', mine.filter((r) => r.plan)]];
    for (const [how, rs] of blocks) {
      const plain = rs.filter((r) => !r.unit);
      const units = [...new Set(rs.filter((r) => r.unit).map((r) => r.unit))];
      const block = usageLines.splice(0, (plain.length ? 1 : 0) + units.length);
      const metered = how === 'metered';
      const amount = (l) => N(metered ? l.exact : l.credits);
      const measure = metered ? big('charge_nanos') : big('credits_nanos');
      if (plain.length) {
        const l = block.shift();
        assert.equal(l?.kind, 'usage', `${what}: a usage line for its ${how} requests without a unit`);
        assert.equal(l.records, plain.length, `${what}: ${how} usage records`);
        assert.equal(l.quantity, String(plain.length));
        assert.equal(amount(l), sumOf(plain, measure), `${what}: the ${how} usage line is its records' ${metered ? 'charge' : 'credits'}`);
        if (!metered) assert.equal(N(l.exact), 0n, `${what}: usage on a plan is billed in credits`);
      }
      assert.deepEqual(block.map((l) => l.kind).sort(), units.map(() => 'unit'), `${what}: a unit line per ${how} unit`);
      assert.deepEqual(block.map((l) => l.ref).sort(), [...units].sort());
      for (const l of block) {
        const us = rs.filter((r) => r.unit === l.ref);
        assert.equal(l.records, us.length, `${what}: unit ${l.ref} records`);
        assert.equal(l.quantity, String(us.reduce((x, r) => x + r.unit_count, 0)), `${what}: unit ${l.ref} count`);
        assert.equal(amount(l), sumOf(us, measure), `${what}: ${how} unit ${l.ref}`);
        if (!metered) assert.equal(N(l.exact), 0n, `${what}: a unit on a plan is billed in credits`);
      }
    }
    assert.deepEqual(usageLines, [], `${what}: no usage line without records behind it`);
    const meteredLines = inv.lines.filter((l) => (l.kind === 'usage' || l.kind === 'unit') && N(l.exact) !== 0n);
    assert.equal(sumOf(meteredLines, (l) => N(l.exact)), sumOf(mine.filter((r) => !r.plan), big('charge_nanos')),
      `${what}: what it used without a plan is billed exactly its records' charge`);
    const consumed = sumOf(mine, big('credits_nanos'));
    if (mine.some((r) => r.plan) || consumed !== 0n) {
      // the credits consumed are split into allowance, grants and overage
      const split = sumOf([...kinds('included'), ...kinds('grant'), ...kinds('overage')], (l) => N(l.credits));
      assert.equal(split, consumed, `${what}: allowance + grants + overage = the credits consumed`);
      for (const l of kinds('included')) assert.ok(N(l.credits) <= N(inv.usage.allowance), `${what}: within the allowance`);
    } else {
      assert.deepEqual([...kinds('included'), ...kinds('grant'), ...kinds('overage')].map((l) => N(l.credits)).filter((c) => c !== 0n), []);
    }
    for (const l of kinds('topup')) assert.ok(N(l.credits) > 0n && N(l.exact) >= 0n);
  }

  // statements: billed = cost + fee + earnings, exact and in cents; each row
  // is its invoice and its customer's records
  let billed = 0n, stmtCost = 0n, stmtCostExact = 0n;
  const rowsSeen = new Set();
  for (const st of d.statements) {
    assert.equal(st.period, P);
    let t = { billed: 0n, cost: 0n, fee: 0n, earnings: 0n, billed_exact: 0n, cost_exact: 0n, fee_exact: 0n, earnings_exact: 0n };
    let records = 0, customers = 0;
    for (const row of st.rows) {
      const what = `statement row ${st.app}/${row.customer}`;
      rowsSeen.add(acctKey(st.app, row.customer));
      for (const k of Object.keys(t)) t[k] += N(row[k]);
      records += row.records;
      customers += row.customer !== '';
      for (const k of ['billed', 'cost', 'fee', 'earnings']) assert.equal(N(row[k]) % CENT, 0n, `${what}: ${k} in cents`);
      assert.equal(N(row.billed), N(row.cost) + N(row.fee) + N(row.earnings), `${what}: cents add up`);
      assert.equal(N(row.billed_exact), N(row.cost_exact) + N(row.fee_exact) + N(row.earnings_exact), `${what}: nanos add up`);
      const mine = byAcct.get(acctKey(st.app, row.customer)) ?? [];
      assert.equal(row.records, mine.length, `${what}: records`);
      assert.equal(N(row.cost_exact), sumOf(mine, big('cost_nanos')), `${what}: cost is the records'`);
      assert.equal(N(row.fee_exact), sumOf(mine, big('fee_nanos')), `${what}: fee is the records'`);
      assert.equal(N(row.charge), sumOf(mine, big('charge_nanos')), `${what}: charge`);
      assert.equal(N(row.margin), sumOf(mine, big('margin_nanos')), `${what}: margin`);
      if (row.invoice !== null) {
        const inv = invById.get(row.invoice);
        assert.ok(inv, `${what}: its invoice ${row.invoice} exists`);
        assert.deepEqual([inv.app, inv.customer], [st.app, row.customer]);
        assert.equal(N(row.billed), N(inv.total), `${what}: billed is the invoice's total`);
        assert.equal(N(row.billed_exact), N(inv.exact));
      } else {
        assert.equal(N(row.billed), 0n, `${what}: nothing billed without an invoice`);
        assert.equal(N(row.billed_exact), 0n);
      }
    }
    for (const k of Object.keys(t)) assert.equal(N(st[k]), t[k], `statement ${st.app}: ${k} is the rows' sum`);
    assert.equal(st.records, records);
    assert.equal(st.customers, customers);
    billed += t.billed;
    stmtCost += t.cost;
    stmtCostExact += t.cost_exact;
  }
  assert.equal(billed, invTotal, 'the statements bill what the invoices total');
  // the period's cost and fee are rounded once, then cut across the rows
  const rowsAll = d.statements.flatMap((st) => st.rows);
  assert.equal(stmtCost, cents(stmtCostExact), "the statements' cost is the period's exact cost, rounded half-up once");
  assert.equal(sumOf(rowsAll, (r) => N(r.fee)), cents(sumOf(rowsAll, (r) => N(r.fee_exact))), 'and so is their fee');
  for (const r of rowsAll) {
    for (const k of ['cost', 'fee']) {
      const off = N(r[k]) - N(r[`${k}_exact`]);
      assert.ok(off > -CENT && off < CENT, `statement row ${r.customer}: ${k} within a cent of exact (${r[k]} vs ${r[`${k}_exact`]})`);
    }
  }
  for (const inv of d.invoices) assert.ok(rowsSeen.has(acctKey(inv.app, inv.customer)), `${inv.id} is on a statement`);
  for (const k of byAcct.keys()) assert.ok(rowsSeen.has(k), `every account with records is on a statement: ${JSON.stringify(k)}`);

  // settlements: per offering, the records' tokens and cost
  const byOffering = groupBy(recs.filter((r) => r.offering || BigInt(r.cost_nanos) !== 0n),
    (r) => acctKey(r.provider, r.offering));
  let settled = 0n, settledExact = 0n, rows = 0;
  const tokenSum = (rs) => ({
    prompt: rs.reduce((s, r) => s + r.prompt_tokens, 0), cached: rs.reduce((s, r) => s + r.cached_tokens, 0),
    cache_write: rs.reduce((s, r) => s + r.cache_write_tokens, 0),
    completion: rs.reduce((s, r) => s + r.completion_tokens, 0), reasoning: rs.reduce((s, r) => s + r.reasoning_tokens, 0),
  });
  for (const sp of d.settlements) {
    assert.equal(sp.period, P);
    const all = [];
    let cost = 0n, costExact = 0n;
    for (const o of sp.offerings) {
      const mine = byOffering.get(acctKey(sp.provider, o.offering)) ?? [];
      assert.ok(mine.length, `settlement ${sp.provider}/${o.offering}: records served it`);
      assert.equal(o.records, mine.length, `settlement ${o.offering}: records`);
      assert.deepEqual(o.tokens, tokenSum(mine), `settlement ${o.offering}: tokens are the records'`);
      assert.equal(N(o.cost_exact), sumOf(mine, big('cost_nanos')), `settlement ${o.offering}: exact cost`);
      assert.equal(N(o.cost) % CENT, 0n);
      all.push(...mine);
      cost += N(o.cost);
      costExact += N(o.cost_exact);
      rows++;
    }
    assert.equal(N(sp.cost), cost, `settlement ${sp.provider}: cost is its offerings'`);
    assert.equal(N(sp.cost_exact), costExact);
    assert.equal(sp.records, all.length);
    assert.deepEqual(sp.tokens, tokenSum(all));
    settled += cost;
    settledExact += costExact;
  }
  assert.equal(rows, byOffering.size, 'a settlement row for every offering that served');
  assert.equal(settled, stmtCost, "the settlements' cents are the statements' cost");
  assert.equal(settledExact, stmtCostExact, 'and so are their nanos');
  assert.equal(settledExact, sumOf(recs, big('cost_nanos')), "and the records' cost");
  return invByCustomer;
}

/** SDK stream, read to its end. */
async function drain(stream) {
  let text = '';
  for await (const c of stream) text += c.choices?.[0]?.delta?.content ?? '';
  return text;
}

// ---- a month through the gateway ------------------------------------------------------------

let sim, slowSim, gw;
let sent = 0; // requests sent through the gateway, each one a usage record
let topupGrant; // the id of acme's paid top-up
let moveAt; // [before, after] the plan change's call, ms
let firstDraft; // the CLI's draft after the month's traffic

function config() {
  return {
    providers: [
      { name: 'alpha', base_url: sim.baseURL },
      { name: 'beta', base_url: sim.baseURL, forward_headers: ['X-Sim-Cached-Tokens'] },
      { name: 'slow', base_url: slowSim.baseURL },
    ],
    offerings: [
      { id: 'alpha/fast', provider: 'alpha', model: 'sim-fast', price: { input: '0.15', output: '0.60' } },
      { id: 'alpha/embed', provider: 'alpha', model: 'text-embedding-3-small', price: { input: '0.02' } },
      { id: 'beta/premium', provider: 'beta', model: 'sim-premium',
        price: { input: '2.50', cached_input: '1.25', output: '10.00', request: '0.001' } },
      { id: 'slow/chat', provider: 'slow', model: 'sim-slow', price: { input: '0.30', output: '1.20' } },
    ],
    models: [
      { name: 'fast', offerings: ['alpha/fast'] },
      { name: 'embed', offerings: ['alpha/embed'] },
      { name: 'premium', offerings: ['beta/premium'] },
      { name: 'slow', offerings: ['slow/chat'] },
    ],
    plans: [
      { id: 'pro', fee: '30.00', included_credits: 100, credit: '0.000001', overage: '0.0005', unit_credits: { report: 3 } },
      { id: 'basic', fee: '5.00', included_credits: 1000000, credit: '0.000001' },
      { id: 'starter', fee: '10.00', included_credits: 50, credit: '0.000001', overage: '0.0003' },
    ],
    apps: [
      { id: 'shop', margin: { markup_bps: 2500, platform_fee_bps: 1000, units: { report: '0.40' } } },
      { id: 'market', create_customers: true, default_plan: 'starter', margin: { markup_bps: 2000, platform_fee_bps: 500 } },
    ],
    customers: [
      { id: 'acme', app: 'shop', plan: 'pro' },
      { id: 'bolt', app: 'shop' },
      { id: 'calm', app: 'shop', plan: 'basic' },
    ],
    keys: [
      { id: 'acme', sha256: sha256(KEYS.acme), customer: 'acme' },
      { id: 'bolt', sha256: sha256(KEYS.bolt), customer: 'bolt' },
      { id: 'calm', sha256: sha256(KEYS.calm), customer: 'calm' },
      { id: 'shop', sha256: sha256(KEYS.shop), app: 'shop' },
      { id: 'market', sha256: sha256(KEYS.market), app: 'market' },
      { id: 'admin', sha256: sha256(KEYS.admin), admin: true },
    ],
    metering: { flush_ms: 20 },
  };
}

async function admin(method, p, body) {
  const r = await gw.fetch(p, {
    method,
    headers: { Authorization: `Bearer ${KEYS.admin}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    /* csv, html */
  }
  return { status: r.status, text, body: json, type: r.headers.get('content-type') };
}

/** Waits until the ledger holds every request sent; the records. */
async function allRecords() {
  return until(() => {
    const recs = gw.usage();
    return recs.length >= sent ? recs : null;
  }, { timeout: ms(15000), what: `${sent} usage records in the ledger` });
}

const msgs = (s) => [{ role: 'user', content: s }];

async function month() {
  const acme = gw.client(KEYS.acme);
  const bolt = gw.client(KEYS.bolt);
  const calm = gw.client(KEYS.calm);
  const shop = gw.client(KEYS.shop);
  const market = gw.client(KEYS.market);
  const unit = (name, count) => ({ headers: { 'X-Tollgate-Unit': name, 'X-Tollgate-Unit-Count': String(count) } });
  const as = (customer) => ({ headers: { 'X-Tollgate-Customer': customer } });
  const chat = async (client, model, i, opts = {}) => {
    sent++;
    const content = `request ${i} of the month ${'about invoices '.repeat(i % 4)}`;
    return client.chat.completions.create({ model, messages: msgs(content) }, opts);
  };
  const stream = async (client, model, i, opts = {}, extra = {}) => {
    sent++;
    return drain(await client.chat.completions.create(
      { model, stream: true, messages: msgs(`streamed request ${i}`), ...extra }, opts));
  };
  const embed = async (client, input, opts = {}) => {
    sent++;
    return client.embeddings.create({ model: 'embed', input }, opts);
  };

  // acme (plan pro, with overage): a paid top-up first, then past its
  // allowance and the top-up into overage
  const t = await admin('POST', '/admin/v1/customers/acme/topups', { credits: '500', paid: '1.25', memo: 'a top-up of the month' });
  assert.equal(t.status, 201, t.text);
  topupGrant = t.body.grant.id;
  for (let i = 0; i < 4; i++) await chat(acme, 'fast', i);
  await stream(acme, 'fast', 4);
  await stream(acme, 'fast', 5, {}, { stream_options: { include_usage: true } });
  await chat(acme, 'premium', 6);
  await chat(acme, 'premium', 7, { headers: { 'X-Sim-Cached-Tokens': '5' } });
  await stream(acme, 'premium', 8);
  await chat(acme, 'premium', 9, unit('report', 2));
  await embed(acme, ['an invoice', 'a statement']);

  // bolt (no plan): metered, with a priced action unit and an unpriced one
  for (let i = 0; i < 3; i++) await chat(bolt, 'fast', 10 + i);
  await stream(bolt, 'fast', 13);
  await chat(bolt, 'premium', 14, unit('report', 1));
  await chat(bolt, 'premium', 15, unit('report', 2));
  await chat(bolt, 'fast', 16, unit('ticket', 3));
  await embed(bolt, 'a settlement');

  // calm (plan basic, no overage): inside its allowance
  await chat(calm, 'fast', 17);
  await stream(calm, 'fast', 18);

  // shop's own key, no customer: usage no invoice bills
  await chat(shop, 'fast', 19);

  // market creates its customers on its first request, on plan starter
  for (let i = 0; i < 2; i++) await chat(market, 'fast', 20 + i, as('newco'));
  await stream(market, 'fast', 22, as('newco'));
  await chat(market, 'fast', 23, as('mover'));
  await stream(market, 'premium', 24, as('mover'));
  // ... and one of them moves to plan pro mid-period
  const before = Date.now();
  const mv = await admin('PUT', '/admin/v1/customers/mover/plan', { plan: 'pro', app: 'market' });
  moveAt = [before, Date.now()];
  assert.equal(mv.status, 200, mv.text);
  await chat(market, 'premium', 25, as('mover'));
  await chat(market, 'fast', 26, as('mover'));
}

before(async () => {
  sim = await startSim({ seed: 17, conf: { completion_tokens: { min: 5, max: 60 } } });
  // the slow provider: a stream there is still running when the gateway is killed
  slowSim = await startSim({ seed: 18, tps: 25, conf: { completion_tokens: { min: 400, max: 400 } } });
  gw = await startGateway(config());
  await month();
});

describe('a month through the gateway', () => {
  test('close-period: invoices, statements and settlements equal the usage records, the plans and the sim', async () => {
    const recs = await allRecords();
    assert.equal(recs.length, sent, 'one record per request');
    assert.ok(recs.every((r) => r.status === 200 && r.outcome === 'completed'), 'every request was served');
    const d = firstDraft = closeCli(gw.configPath);
    assert.equal(d.unchanged, false);
    const inv = checkDocs(d, recs);
    assert.deepEqual(Object.keys(inv).sort(), ['acme', 'bolt', 'calm', 'mover', 'newco'], 'an invoice per customer');
    const kinds = (i) => i.lines.map((l) => l.kind);
    const line = (i, kind, ref) => i.lines.find((l) => l.kind === kind && (ref === undefined || l.ref === ref));
    const of = (c) => recs.filter((r) => r.customer === c);

    // acme, on pro the whole period: its fee in full, then its credits:
    // the allowance, the top-up (as the wallet burned it), the overage
    const acme = inv.acme;
    assert.equal(acme.plan, 'pro');
    assert.deepEqual(kinds(acme), ['fee', 'usage', 'unit', 'included', 'grant', 'overage', 'topup']);
    const fee = line(acme, 'fee');
    assert.equal(fee.ref, 'pro');
    assert.equal(N(fee.exact), PLAN.pro.fee);
    assert.equal(fee.quantity, `${DAYS_TOTAL}/${DAYS_TOTAL} days`);
    assert.equal(N(acme.usage.allowance), PLAN.pro.included);
    const w = await admin('GET', '/admin/v1/customers/acme/wallet');
    assert.equal(w.status, 200, w.text);
    const credits = sumOf(of('acme'), big('credits_nanos'));
    const fromGrants = N(w.body.grants_used);
    assert.ok(fromGrants > 0n && fromGrants <= TOPUP.credits, `the top-up was burned: ${w.body.grants_used}`);
    const inc = credits - fromGrants < PLAN.pro.included ? credits - fromGrants : PLAN.pro.included;
    const over = credits - fromGrants - inc;
    assert.ok(over > 0n, 'acme went into overage');
    assert.equal(N(line(acme, 'included').credits), inc);
    assert.equal(N(line(acme, 'included').credits), N(w.body.included_used), 'the included line is what the wallet burned');
    assert.equal(N(line(acme, 'grant', topupGrant).credits), fromGrants, 'the grant line is what the wallet burned of it');
    assert.equal(N(line(acme, 'overage').credits), over);
    assert.equal(N(line(acme, 'overage').credits), N(w.body.overage_credits), "the wallet's overage");
    assert.equal(N(line(acme, 'overage').exact), muldiv(over, PLAN.pro.overage, USD), 'overage = credits x the plan price');
    assert.equal(N(line(acme, 'overage').unit_price), PLAN.pro.overage);
    const report = line(acme, 'unit', 'report');
    assert.equal(report.quantity, '2');
    assert.equal(N(report.credits), 2n * REPORT_CREDITS, "the plan's unit credits");
    const top = line(acme, 'topup', topupGrant);
    assert.equal(N(top.exact), TOPUP.paid, 'the top-up is billed what was paid');
    assert.equal(N(top.credits), TOPUP.credits);

    // bolt, metered: its records' charge, the priced unit at its price
    const bolt = inv.bolt;
    assert.equal(bolt.plan, null);
    assert.deepEqual(kinds(bolt), ['usage', 'unit', 'unit']);
    const rep = line(bolt, 'unit', 'report');
    assert.equal(rep.quantity, '3');
    assert.equal(N(rep.unit_price), REPORT_PRICE);
    assert.equal(N(rep.exact), 3n * REPORT_PRICE);
    assert.equal(line(bolt, 'unit', 'ticket').quantity, '3');
    assert.equal(N(bolt.exact), sumOf(of('bolt'), big('charge_nanos')), 'a metered invoice is its records\' charge');
    assert.equal(N(bolt.total), cents(sumOf(of('bolt').filter((r) => !r.unit), big('charge_nanos'))) +
      cents(3n * REPORT_PRICE) + cents(sumOf(of('bolt').filter((r) => r.unit === 'ticket'), big('charge_nanos'))));

    // calm, on basic: its fee and its credits inside the allowance
    assert.deepEqual(kinds(inv.calm), ['fee', 'usage', 'included']);
    assert.equal(N(inv.calm.total), PLAN.basic.fee);
    assert.equal(N(line(inv.calm, 'included').credits), sumOf(of('calm'), big('credits_nanos')));

    // newco, made by the app today on starter: from today to the period's end
    const newco = inv.newco;
    const seen = Math.min(...of('newco').map((r) => r.start_ms));
    const ndays = daysFrom(seen);
    assert.equal(newco.plan, 'starter');
    assert.deepEqual(kinds(newco), ['fee', 'usage', 'included', ...(kinds(newco).includes('overage') ? ['overage'] : [])]);
    assert.equal(line(newco, 'fee').quantity, `${ndays}/${DAYS_TOTAL} days`);
    assert.equal(N(line(newco, 'fee').exact), muldiv(PLAN.starter.fee, ndays, DAYS_TOTAL), 'the fee prorated by day');
    assert.equal(N(newco.usage.allowance), muldiv(PLAN.starter.included, ndays, DAYS_TOTAL), 'the allowance too');

    // mover: moved to pro today, so pro from today on (a plan is the
    // last one set on a day); its overage at pro's price
    assert.equal(floorDay(moveAt[0]), floorDay(moveAt[1]), 'the plan change did not straddle midnight');
    const mover = inv.mover;
    const mdays = daysFrom(moveAt[0]);
    assert.equal(mover.plan, 'pro');
    const mfees = mover.lines.filter((l) => l.kind === 'fee');
    assert.deepEqual(mfees.map((l) => [l.ref, l.quantity]), [['pro', `${mdays}/${DAYS_TOTAL} days`]]);
    assert.equal(N(mfees[0].exact), muldiv(PLAN.pro.fee, mdays, DAYS_TOTAL));
    assert.equal(N(mover.usage.allowance), muldiv(PLAN.pro.included, mdays, DAYS_TOTAL));
    const mcredits = sumOf(of('mover'), big('credits_nanos'));
    const minc = mcredits < N(mover.usage.allowance) ? mcredits : N(mover.usage.allowance);
    assert.equal(N(line(mover, 'included').credits), minc);
    assert.ok(mcredits > minc, 'mover went past its allowance');
    assert.equal(line(mover, 'overage').ref, 'pro');
    assert.equal(N(line(mover, 'overage').exact), muldiv(mcredits - minc, PLAN.pro.overage, USD));

    // the unbilled row: shop's own key named no customer
    const shop = d.statements.find((s) => s.app === 'shop');
    const unbilled = shop.rows.find((r) => r.customer === '');
    assert.ok(unbilled, 'usage without a customer is on the statement');
    assert.equal(unbilled.invoice, null);
    assert.equal(unbilled.records, 1);
    assert.ok(N(unbilled.earnings) <= 0n, 'a cost nobody pays is a loss');

    // the settlements are what the sim served, by its own count
    const stats = await sim.stats();
    const upstream = { 'alpha/fast': 'sim-fast', 'alpha/embed': 'text-embedding-3-small', 'beta/premium': 'sim-premium' };
    const offerings = d.settlements.flatMap((s) => s.offerings.map((o) => ({ provider: s.provider, ...o })));
    assert.deepEqual(offerings.map((o) => `${o.provider}:${o.offering}`).sort(),
      ['alpha:alpha/embed', 'alpha:alpha/fast', 'beta:beta/premium']);
    for (const o of offerings) {
      const s = stats.models[upstream[o.offering]];
      assert.ok(s, `the sim served ${upstream[o.offering]}`);
      assert.equal(o.records, s.requests, `${o.offering}: requests`);
      assert.equal(o.tokens.prompt, s.prompt_tokens, `${o.offering}: prompt tokens`);
      assert.equal(o.tokens.completion, s.completion_tokens, `${o.offering}: completion tokens`);
      assert.equal(o.tokens.cached, s.cached_tokens, `${o.offering}: cached tokens`);
    }
    assert.ok(offerings.find((o) => o.offering === 'beta/premium').tokens.cached > 0, 'cached tokens reached the settlement');
    assert.equal(stats.requests, sent, 'the sim saw every request');
  });

  test("the admin API's close is the CLI's, but for when it was made", async () => {
    const r = await admin('POST', `/admin/v1/periods/${P}/close`);
    assert.equal(r.status, 200, r.text);
    assert.match(r.type, /application\/json/);
    assert.equal(r.body.unchanged, false);
    assert.deepEqual(sansClosed(r.body), sansClosed(firstDraft));
    assert.ok(Date.parse(r.body.closed) >= Date.parse(firstDraft.closed), 'a later close');
    const f = await admin('POST', `/admin/v1/periods/${P}/close`, { finalize: false });
    assert.equal(f.status, 200, f.text);
    assert.deepEqual(sansClosed(f.body), sansClosed(firstDraft), '{"finalize": false} is a draft');
  });

  test('closing twice changes nothing; the API reads what the CLI shows, JSON and CSV', async () => {
    const a = closeCli(gw.configPath);
    const b = closeCli(gw.configPath);
    assert.deepEqual(sansClosed(b), sansClosed(a), 'the same documents');
    assert.deepEqual(sansClosed(b), sansClosed(firstDraft), 'and the same as the first close');
    // the stored close, as it was last made
    const got = await admin('GET', `/admin/v1/periods/${P}`);
    assert.equal(got.status, 200, got.text);
    assert.deepEqual(got.body, b);
    const cli = (cmd, extra = []) => cliOk([cmd, ...(cmd === 'invoice' ? [] : [P]), ...extra, '--config', gw.configPath]);
    const pairs = [
      ['invoices', [], 'invoices', ''], ['invoices', ['--customer', 'acme'], 'invoices', 'customer=acme'],
      ['statement', [], 'statements', ''], ['statement', ['--app', 'market'], 'statements', 'app=market'],
      ['settlement', [], 'settlements', ''], ['settlement', ['--provider', 'beta'], 'settlements', 'provider=beta'],
    ];
    for (const [cmd, filter, doc, q] of pairs) {
      for (const format of ['json', 'csv']) {
        const sep = q ? `?${q}&` : '?';
        const r = await admin('GET', `/admin/v1/periods/${P}/${doc}${sep}format=${format}`);
        assert.equal(r.status, 200, r.text);
        assert.match(r.type, format === 'csv' ? /^text\/csv/ : /^application\/json/);
        assert.equal(r.text, cli(cmd, [...filter, '--format', format]), `${doc} ${q} as ${format}`);
      }
    }
    // ?format=json is the default, and filters filter
    assert.equal((await admin('GET', `/admin/v1/periods/${P}/invoices`)).text, cli('invoices', ['--format', 'json']));
    const acmeOnly = JSON.parse(cli('invoices', ['--customer', 'acme', '--format', 'json']));
    assert.deepEqual(acmeOnly, b.invoices.filter((i) => i.customer === 'acme'));
    assert.deepEqual(JSON.parse(cli('statement', ['--app', 'market', '--format', 'json'])),
      b.statements.filter((s) => s.app === 'market'));
    assert.deepEqual(JSON.parse(cli('settlement', ['--provider', 'beta', '--format', 'json'])),
      b.settlements.filter((s) => s.provider === 'beta'));
    // one invoice, every format
    for (const inv of b.invoices) {
      for (const format of ['json', 'csv', 'html']) {
        const r = await admin('GET', `/admin/v1/invoices/${inv.id}?format=${format}`);
        assert.equal(r.status, 200, r.text);
        assert.equal(r.text, cliOk(['invoice', inv.id, '--config', gw.configPath, '--format', format]), `${inv.id} as ${format}`);
      }
      assert.deepEqual(JSON.parse(cliOk(['invoice', inv.id, '--config', gw.configPath, '--format', 'json'])), inv);
      const table = cliOk(['invoice', inv.id, '--config', gw.configPath]);
      assert.match(table, new RegExp(`^invoice ${inv.id} \\(draft\\): customer ${inv.customer} of app ${inv.app}`));
      assert.match(table, new RegExp(`^total\\s+${dollars(N(inv.total)).slice(1).replace(/[.$]/g, '\\$&')}$`, 'm'));
    }
    // the close's own CSV and table: a statement per app, a settlement per provider
    const csv = csvObjects(cliOk(['close-period', P, '--config', gw.configPath, '--format', 'csv']));
    assert.deepEqual(csv.filter((r) => r.document === 'statement')
      .map((r) => [r.name, N(r.billed), N(r.cost), N(r.fee), N(r.earnings)]),
      b.statements.map((s) => [s.app, N(s.billed), N(s.cost), N(s.fee), N(s.earnings)]));
    assert.deepEqual(csv.filter((r) => r.document === 'settlement').map((r) => [r.name, r.records, N(r.cost)]),
      b.settlements.map((s) => [s.provider, String(s.records), N(s.cost)]));
    assert.ok(csv.every((r) => r.status === 'draft'));
    const table = cliOk(['close-period', P, '--config', gw.configPath]);
    const total = sumOf(b.invoices, (i) => N(i.total));
    const usd = dollars(total).slice(1).replace('.', '\\.');
    assert.match(table, new RegExp(`^period ${P}: draft; ${b.invoices.length} invoices, total ${usd} USD$`, 'm'));
  });

  test('explain-invoice: every amount of every invoice recomputed from the records and the wallet, and matching', () => {
    const d = closeCli(gw.configPath);
    assert.ok(d.invoices.length > 3);
    for (const inv of d.invoices) {
      const r = run(['explain-invoice', inv.id, '--config', gw.configPath]);
      assert.equal(r.code, 0, `${inv.id}: ${r.stderr}\n${r.stdout}`);
      assert.match(r.stdout, new RegExp(`^invoice ${inv.id} \\(draft\\) of customer ${inv.customer}, app ${inv.app}`));
      /* a trace and a check per line, and the totals */
      assert.equal(r.stdout.match(/^    check: matches$/gm)?.length ?? 0, inv.lines.length, r.stdout);
      assert.match(r.stdout, new RegExp(`usage behind it: ${inv.usage.records} records`));
      assert.match(r.stdout, /every amount matches what is behind it\n$/);
    }
    const none = run(['explain-invoice', 'INV-2001-01-00001', '--config', gw.configPath]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /no invoice 'INV-2001-01-00001'/);
    assert.equal(run(['explain-invoice', '--config', gw.configPath]).code, 2);
  });

  test('export: every file, CSVs that parse and agree with the JSON, HTML invoices, Stripe meter events', () => {
    const dir = path.join(tempDir(), 'export');
    const out = cliOk(['export', P, '--dir', dir, '--config', gw.configPath]);
    const d = closeCli(gw.configPath); // the same documents (closing changes nothing)
    assert.match(out, new RegExp(`wrote ${d.invoices.length} invoices .* of ${P} \\(draft\\) to `));
    const files = ['invoices.csv', 'invoices.json', 'statements.csv', 'statements.json', 'settlements.csv',
                   'settlements.json', 'stripe-meter-events.jsonl', 'stripe-meter-events.csv'];
    for (const f of files) assert.ok(existsSync(path.join(dir, f)), `${f} was written`);
    assert.deepEqual(readdirSync(path.join(dir, 'invoices')).sort(), d.invoices.map((i) => `${i.id}.html`).sort());
    const read = (f) => readFileSync(path.join(dir, f), 'utf8');

    // JSON: the close's documents
    assert.deepEqual(JSON.parse(read('invoices.json')), d.invoices);
    assert.deepEqual(JSON.parse(read('statements.json')), d.statements);
    assert.deepEqual(JSON.parse(read('settlements.json')), d.settlements);

    // invoices.csv: a row per line; per invoice, the amounts sum to the subtotal
    const lines = csvObjects(read('invoices.csv'));
    assert.equal(lines.length, d.invoices.reduce((s, i) => s + i.lines.length, 0));
    for (const inv of d.invoices) {
      const mine = lines.filter((l) => l.invoice === inv.id);
      assert.deepEqual(mine.map((l) => [l.n, l.kind, l.ref, l.description, l.quantity, l.exact, l.amount, l.credits]),
        inv.lines.map((l) => [String(l.n), l.kind, l.ref, l.description, l.quantity, l.exact, l.amount, l.credits]),
        `${inv.id}: its lines in the CSV`);
      assert.ok(mine.every((l) => l.period === P && l.status === 'draft' && l.app === inv.app && l.customer === inv.customer));
      assert.equal(sumOf(mine, (l) => N(l.amount)), N(inv.subtotal), `${inv.id}: the CSV's amounts sum to the subtotal`);
      for (const l of mine) assert.equal(l.unit_price === '' ? null : l.unit_price, inv.lines[Number(l.n) - 1].unit_price);
    }
    assert.ok(lines.some((l) => l.description.includes(',')), 'a description with a comma survived the quoting');

    // statements.csv: a row per customer; per app the JSON's totals
    const srows = csvObjects(read('statements.csv'));
    for (const st of d.statements) {
      const mine = srows.filter((r) => r.app === st.app);
      assert.equal(mine.length, st.rows.length);
      for (const k of ['billed', 'cost', 'fee', 'earnings', 'billed_exact', 'cost_exact', 'fee_exact', 'earnings_exact'])
        assert.equal(sumOf(mine, (r) => N(r[k])), N(st[k]), `statements.csv ${st.app}: ${k}`);
      assert.equal(mine.reduce((s, r) => s + Number(r.records), 0), st.records);
    }
    assert.equal(sumOf(srows, (r) => N(r.billed)), sumOf(d.invoices, (i) => N(i.total)),
      "the statements' CSV bills the invoices' total");

    // settlements.csv: a row per offering; per provider the JSON's totals
    const orows = csvObjects(read('settlements.csv'));
    for (const sp of d.settlements) {
      const mine = orows.filter((r) => r.provider === sp.provider);
      assert.equal(mine.length, sp.offerings.length);
      assert.equal(sumOf(mine, (r) => N(r.cost)), N(sp.cost), `settlements.csv ${sp.provider}: cost`);
      assert.equal(sumOf(mine, (r) => N(r.cost_exact)), N(sp.cost_exact));
      for (const k of ['prompt', 'cached', 'cache_write', 'completion', 'reasoning'])
        assert.equal(mine.reduce((s, r) => s + Number(r[k]), 0), sp.tokens[k], `settlements.csv ${sp.provider}: ${k} tokens`);
    }

    // each HTML invoice: its id and its total
    for (const inv of d.invoices) {
      const html = read(`invoices/${inv.id}.html`);
      assert.match(html, /^<!DOCTYPE html>/i);
      assert.ok(html.includes(`<title>${inv.id}`) || html.includes(inv.id), `${inv.id}.html names its invoice`);
      const t = dollars(N(inv.total));
      assert.ok(html.includes(`Total (USD)</th><td class="num">${t}</td>`), `${inv.id}.html shows its total ${t}`);
      assert.match(html, /DRAFT/, 'a draft says so');
    }

    // Stripe meter events: one JSON object per line, unique identifiers
    const events = read('stripe-meter-events.jsonl').split('\n').filter(Boolean).map((l) => JSON.parse(l));
    assert.ok(events.length > 0);
    const ids = new Set();
    const byId = new Map(d.invoices.map((i) => [i.id, i]));
    const centsOf = new Map();
    for (const e of events) {
      assert.match(e.event_name, /^tollgate_[a-z0-9_]+$/);
      assert.equal(typeof e.payload.stripe_customer_id, 'string');
      assert.match(e.payload.value, /^-?\d+$/, 'a whole number, as a string');
      assert.match(e.payload.tollgate_amount_cents, /^-?\d+$/);
      assert.ok(!ids.has(e.identifier), `identifier ${e.identifier} is unique`);
      ids.add(e.identifier);
      assert.equal(e.timestamp, P_END / 1000 - 1, "the period's last second");
      const m = /^(INV-\d{4}-\d{2}-\d{5})-(\d+)$/.exec(e.identifier);
      assert.ok(m, `identifier is the invoice and line: ${e.identifier}`);
      const inv = byId.get(m[1]);
      const l = inv.lines[Number(m[2]) - 1];
      assert.equal(e.payload.stripe_customer_id, inv.customer);
      assert.equal(BigInt(e.payload.tollgate_amount_cents) * CENT, N(l.amount), `${e.identifier}: the line's cents`);
      if (l.kind === 'usage') assert.deepEqual([e.event_name, e.payload.value], ['tollgate_usage', l.quantity]);
      else if (l.kind === 'unit') assert.deepEqual([e.event_name, e.payload.value], [`tollgate_unit_${l.ref}`, l.quantity]);
      else if (l.kind === 'overage') {
        assert.equal(e.event_name, 'tollgate_overage_credits');
        assert.equal(BigInt(e.payload.value), roundTo(N(l.credits), USD) / USD, 'the credits rounded half-up');
      } else assert.fail(`no event for a ${l.kind} line`);
      centsOf.set(inv.id, (centsOf.get(inv.id) ?? 0n) + BigInt(e.payload.tollgate_amount_cents));
    }
    for (const inv of d.invoices) {
      const usage = sumOf(inv.lines.filter((l) => !['fee', 'topup'].includes(l.kind)), (l) => N(l.amount));
      assert.equal((centsOf.get(inv.id) ?? 0n) * CENT, usage, `${inv.id}: the events' cents are its subtotal less fees and top-ups`);
    }
    const csvEvents = csvObjects(read('stripe-meter-events.csv'));
    assert.deepEqual(
      csvEvents.map((r) => [r.identifier, Number(r.timestamp), r.event_name, r.stripe_customer_id, r.value,
                            r.tollgate_amount_cents]),
      events.map((e) => [e.identifier, e.timestamp, e.event_name, e.payload.stripe_customer_id, e.payload.value,
                         e.payload.tollgate_amount_cents]),
      'the CSV holds the same events');
  });
});

describe('bad input', () => {
  test('the command line: usage errors exit 2 naming the problem; finalizing now exits 1', () => {
    const c = gw.configPath;
    const none = run(['close-period', '--config', c]);
    assert.equal(none.code, 2, none.stderr);
    assert.match(none.stderr, /expected the period/);
    const flag = run(['close-period', P, '--config', c, '--frobnicate']);
    assert.equal(flag.code, 2);
    assert.match(flag.stderr, /--frobnicate/);
    const fmt = run(['close-period', P, '--config', c, '--format', 'xml']);
    assert.equal(fmt.code, 2);
    assert.match(fmt.stderr, /--format xml/);
    const noConfig = run(['close-period', P]);
    assert.equal(noConfig.code, 2);
    assert.match(noConfig.stderr, /--config/);
    const month13 = run(['close-period', '2026-13', '--config', c]);
    assert.equal(month13.code, 2);
    assert.match(month13.stderr, /2026-13 is not a period: expected a month, YYYY-MM/);
    const end = new Date(P_END).toISOString().slice(0, 19);
    const fin = run(['close-period', P, '--config', c, '--finalize']);
    assert.equal(fin.code, 1, fin.stderr);
    assert.match(fin.stderr, new RegExp(`period ${P} runs until ${end}`));
    assert.match(fin.stderr, /a draft can be made now/);
    // nothing was finalized: still the draft
    const d = cliJson(['invoices', P, '--config', c]);
    assert.ok(d.every((i) => i.status === 'draft'));
    const missing = run(['invoice', 'INV-2001-01-00001', '--config', c]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /INV-2001-01-00001/);
    const unclosed = run(['invoices', '2001-01', '--config', c]);
    assert.equal(unclosed.code, 1);
    assert.match(unclosed.stderr, /2001-01/);
    const noPeriod = run(['statement', '--config', c]);
    assert.equal(noPeriod.code, 2);
    const noDir = run(['export', P, '--config', c]);
    assert.equal(noDir.code, 2);
    assert.match(noDir.stderr, /--dir/);
  });

  // `report --period 2026-13` is a usage error (exit 2); so is a close of
  // a month that does not exist, and a reading of one.
  test('a month that does not exist is a usage error (exit 2), for close-period and invoices alike', () => {
      const r = run(['close-period', '2026-13', '--config', gw.configPath]);
      assert.equal(r.code, 2, r.stderr);
      const i = run(['invoices', '2026-13', '--config', gw.configPath]);
      assert.equal(i.code, 2, i.stderr);
      assert.match(i.stderr, /not a period/);
    });

  test("the admin API: errors in OpenAI's shape", async () => {
    const invoice = (firstDraft ?? closeCli(gw.configPath)).invoices[0].id;
    const expect = async (method, p, body, status, code, { key = KEYS.admin, param } = {}) => {
      const r = await gw.fetch(p, {
        method, body,
        headers: { ...(key ? { Authorization: `Bearer ${key}` } : {}), 'Content-Type': 'application/json' },
      });
      const e = assertErrorShape(await r.json(), code === undefined ? {} : { code });
      assert.equal(r.status, status, `${method} ${p} ${body ?? ''}: ${e.message}`);
      if (param !== undefined) assert.equal(e.param, param);
      return e;
    };
    for (const bad of ['2026-13', '2026-1', 'latest', '202611', '2026-00'])
      await expect('POST', `/admin/v1/periods/${bad}/close`, undefined, 400, 'invalid_period');
    await expect('GET', '/admin/v1/periods/2026-13/invoices', undefined, 400, 'invalid_period');
    const unknown = await expect('GET', `/admin/v1/periods/${P}/receipts`, undefined, 404, 'unknown_url');
    assert.match(unknown.message, /\/close/);
    await expect('GET', `/admin/v1/periods/${P}/close`, undefined, 404, 'unknown_url');
    await expect('POST', `/admin/v1/periods/${P}/invoices`, '', 404, 'unknown_url');
    await expect('DELETE', `/admin/v1/periods/${P}`, undefined, 405, 'method_not_allowed');
    await expect('POST', `/admin/v1/periods/${P}/close`, '', 401, undefined, { key: null });
    await expect('GET', `/admin/v1/periods/${P}`, undefined, 401, undefined, { key: 'sk-nobody' });
    await expect('POST', `/admin/v1/periods/${P}/close`, '', 403, 'admin_key_required', { key: KEYS.acme });
    await expect('GET', `/admin/v1/invoices/${invoice}`, undefined, 403, 'admin_key_required', { key: KEYS.shop });
    const nc = await expect('GET', '/admin/v1/periods/2001-01', undefined, 404, 'period_not_closed');
    assert.match(nc.message, /2001-01/);
    await expect('GET', '/admin/v1/periods/2001-01/invoices', undefined, 404, 'period_not_closed');
    await expect('GET', '/admin/v1/invoices/INV-2001-01-00001', undefined, 404, 'invoice_not_found');
    await expect('GET', `/admin/v1/invoices/INV-${P}-99999`, undefined, 404, 'invoice_not_found');
    await expect('GET', '/admin/v1/invoices/', undefined, 404, 'invoice_not_found');
    await expect('POST', `/admin/v1/periods/${P}/close`, 'finalize please', 400, 'invalid_close');
    await expect('POST', `/admin/v1/periods/${P}/close`, '[true]', 400, 'invalid_close');
    await expect('POST', `/admin/v1/periods/${P}/close`, '{"finalize": 1}', 400, 'invalid_close', { param: 'finalize' });
    await expect('POST', `/admin/v1/periods/${P}/close`, '{"finalize": "true"}', 400, 'invalid_close', { param: 'finalize' });
    await expect('POST', `/admin/v1/periods/${P}/close`, '{"finalise": true}', 400, 'invalid_close');
    await expect('POST', `/admin/v1/periods/${P}/close`, '{"finalize": true, "finalize": false}', 400, 'invalid_close');
    for (const doc of ['invoices', 'statements', 'settlements'])
      await expect('GET', `/admin/v1/periods/${P}/${doc}?format=xml`, undefined, 400, 'invalid_format', { param: 'format' });
    await expect('GET', `/admin/v1/periods/${P}/invoices?format=html`, undefined, 400, 'invalid_format');
    await expect('GET', `/admin/v1/invoices/${invoice}?format=xml`, undefined, 400, 'invalid_format');
    await expect('GET', `/admin/v1/periods/${P}/invoices?customer=${'c'.repeat(129)}`, undefined, 400, 'invalid_filter');
    // finalizing before the period ends is refused, and changes nothing
    const fin = await expect('POST', `/admin/v1/periods/${P}/close`, '{"finalize": true}', 409, 'close_refused');
    assert.match(fin.message, new RegExp(`period ${P} runs until ${new Date(P_END).toISOString().slice(0, 19)}`));
    const still = await admin('GET', `/admin/v1/periods/${P}`);
    assert.equal(still.status, 200);
    assert.equal(still.body.status, 'draft');
    assert.equal(still.body.finalized, null);
  });
});

describe('a crash and a close', () => {
  test('a draft made again after a crash counts the record the journal replayed', async () => {
    const before = closeCli(gw.configPath);
    const prev = gw.usage();
    checkDocs(before, prev);
    const boltBefore = before.invoices.find((i) => i.customer === 'bolt');
    assert.equal(boltBefore.usage.records, prev.filter((r) => r.customer === 'bolt').length);

    // a stream in flight at the slow provider when the gateway dies
    const rid = `close-crash-${process.pid}`;
    const r = await gw.post('/v1/chat/completions', { model: 'slow', stream: true, messages: msgs('a long story, slowly') },
      { key: KEYS.bolt, headers: { 'X-Request-Id': rid } });
    assert.equal(r.status, 200);
    const reader = r.body.getReader();
    let got = '';
    while (!/"content":" /.test(got)) {
      const { value, done } = await reader.read();
      assert.ok(!done, 'the stream is still going');
      got += Buffer.from(value).toString();
    }
    await gw.restart({ kill: 'SIGKILL' });
    await reader.read().then(() => reader.cancel()).catch(() => {});

    const recs = await gw.records(prev.length + 1, { timeout: ms(15000) });
    assert.equal(recs.length, prev.length + 1, 'the interrupted stream, and nothing else, was added');
    const rec = recs.find((x) => x.rid === rid);
    assert.ok(rec, 'the journal replayed the interrupted request');
    assert.equal(rec.outcome, 'interrupted');
    assert.equal(rec.customer, 'bolt');
    assert.ok(BigInt(rec.charge_nanos) > 0n, 'and it is charged');

    const after = closeCli(gw.configPath);
    checkDocs(after, recs);
    const bolt = after.invoices.find((i) => i.customer === 'bolt');
    assert.equal(bolt.id, boltBefore.id, 'the same invoice, made again');
    assert.equal(bolt.usage.records, boltBefore.usage.records + 1, 'it counts the interrupted record');
    assert.equal(N(bolt.exact), N(boltBefore.exact) + BigInt(rec.charge_nanos), 'and bills its charge');
    const usage = (i) => i.lines.find((l) => l.kind === 'usage');
    assert.equal(usage(bolt).records, usage(boltBefore).records + 1);
    // nobody else's invoice moved
    const others = (d) => d.invoices.filter((i) => i.customer !== 'bolt');
    assert.deepEqual(others(after), others(before));
    const slow = after.settlements.find((s) => s.provider === 'slow');
    assert.ok(slow && slow.records === 1, 'the slow provider settles the interrupted request');
    assert.equal(N(slow.cost_exact), BigInt(rec.cost_nanos));
  });
});

describe('a close killed in the middle', () => {
  test('kill -9 during close-period, a few times, then to the end: the documents of an uninterrupted close', async (t) => {
    const bsim = await startSim({ seed: 23, conf: { completion_tokens: { min: 5, max: 80 } } });
    const KEY = 'sk-close-bulk-app';
    const g = await startGateway({
      providers: [{ name: 'sim', base_url: bsim.baseURL }],
      offerings: [
        { id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '0.15', output: '0.60' } },
        { id: 'sim/premium', provider: 'sim', model: 'sim-premium', price: { input: '2.50', output: '10.00' } },
      ],
      models: [{ name: 'fast', offerings: ['sim/fast'] }, { name: 'premium', offerings: ['sim/premium'] }],
      plans: [
        { id: 'metered-plus', fee: '7.00', included_credits: 20, credit: '0.00001', overage: '0.00002' },
        { id: 'flat', fee: '3.00', included_credits: 1000000, credit: '0.00001' },
      ],
      apps: [
        { id: 'bulk', create_customers: true, default_plan: 'metered-plus', margin: { markup_bps: 3000, platform_fee_bps: 700 } },
        { id: 'raw', create_customers: true, margin: { markup_bps: 1500 } },
      ],
      keys: [{ id: 'bulk', sha256: sha256(KEY), app: 'bulk' }, { id: 'raw', sha256: sha256(`${KEY}-raw`), app: 'raw' },
             { id: 'admin', sha256: sha256(KEYS.admin), admin: true }],
      metering: { flush_ms: 50 },
    }, { workers: 4 });

    // a few thousand requests from a few hundred customers, bounded in time
    const TARGET = 5000, CUSTOMERS = 400, deadline = Date.now() + ms(30000);
    let n = 0, ok = 0;
    const worker = async () => {
      while (n < TARGET && Date.now() < deadline) {
        const i = n++;
        const c = i % CUSTOMERS;
        const raw = c % 5 === 0; // a customer of app raw (no plan), else of bulk
        const r = await g.post('/v1/chat/completions',
          { model: i % 7 === 0 ? 'premium' : 'fast', stream: i % 3 === 0, messages: msgs(`bulk ${i}`) },
          { key: raw ? `${KEY}-raw` : KEY, headers: { 'X-Tollgate-Customer': `${raw ? 'r' : 'c'}${c}` } });
        await r.text();
        if (r.status === 200) ok++;
      }
    };
    await Promise.all(Array.from({ length: 32 }, worker));
    assert.ok(ok >= 1000, `enough records to make a close take a while: ${ok} of ${n}`);
    for (let i = 1; i < 25; i++) {
      if (i % 5 === 0) continue;
      const t = await g.post(`/admin/v1/customers/c${i}/topups`, { credits: String(5 + i), paid: `0.0${i % 10}` },
        { key: KEYS.admin });
      assert.equal(t.status, 201, await t.text());
    }
    const recs = await until(() => {
      const all = JSON.parse(g.cli('usage', ['--format', 'json']).stdout).records;
      return all.length >= n ? all : null;
    }, { timeout: ms(20000), what: 'every bulk request in the ledger' });
    await g.proc.stop();
    g.proc.assertClean();

    // two copies of the store, each with a config of its own
    const copy = (name) => {
      const dir = path.join(tempDir(), name);
      cpSync(g.dataDir, path.join(dir, 'data'), { recursive: true });
      const cfg = path.join(dir, 'tollgate.yaml');
      writeFileSync(cfg, toYaml({ ...g.config, metering: { ...g.config.metering, data_dir: path.join(dir, 'data') } }));
      return cfg;
    };
    const A = copy('a'), B = copy('b');

    // B: closed once; how long a close takes (the quickest of two, warm)
    const timed = () => {
      const t0 = Date.now();
      const d = closeCli(B);
      return [d, Date.now() - t0];
    };
    const [docsB, took1] = timed();
    const [again, took2] = timed();
    const took = Math.min(took1, took2);
    assert.deepEqual(sansClosed(again), sansClosed(docsB));
    checkDocs(docsB, recs);
    assert.ok(docsB.invoices.length >= CUSTOMERS, `an invoice per customer: ${docsB.invoices.length}`);
    const read = (cfg) => ['invoices', 'statement', 'settlement'].map((cmd) => cliOk([cmd, P, '--config', cfg, '--format', 'json']));
    const wantB = read(B);

    // A: killed at varied moments: after a fraction of how long a close
    // takes (mostly while it reads), and as soon as it starts writing the
    // store's write-ahead log, then a little later (mid-commit, just after
    // it, or in the checkpoint)
    const wal = path.join(path.dirname(A), 'data', 'ledger.db-wal');
    const walMark = () => {
      try {
        const st = statSync(wal, { bigint: true });
        return `${st.size}:${st.mtimeNs}`;
      } catch {
        return 'none';
      }
    };
    const spin = (msecs) => {
      const until = process.hrtime.bigint() + BigInt(Math.round(msecs * 1e6));
      while (process.hrtime.bigint() < until) { /* busy: the event loop must not delay the kill */ }
    };
    const plans = [
      ...[0, 0.1, 0.3, 0.6, 1, 2].map((extra) => ({ wal: extra })),
      ...[0.2, 0.5, 0.8, 0.95].map((f) => ({ after: Math.max(1, Math.round(took * f)) })),
      ...[0, 0.5, 4].map((extra) => ({ wal: extra })),
    ];
    const outcomes = [];
    for (const plan of plans) {
      const mark = walMark();
      const child = spawn(BIN, ['close-period', P, '--config', A, '--format', 'json'],
        { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
      let stderr = '';
      child.stderr.on('data', (x) => { stderr += x; });
      const exited = new Promise((res) => child.on('close', (code, signal) => res({ code, signal })));
      let how;
      if (plan.after !== undefined) {
        await sleep(plan.after);
        how = `after ${plan.after} ms`;
      } else {
        // a synchronous poll: nothing else runs until the kill
        const deadline = Date.now() + ms(5000);
        while (walMark() === mark && Date.now() < deadline) { /* poll */ }
        spin(plan.wal);
        how = walMark() === mark ? 'no write seen' : `${plan.wal} ms into the write`;
      }
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      const e = await exited;
      if (e.signal === null) assert.equal(e.code, 0, `a close the kill missed succeeded: ${stderr}`);
      // whatever the moment, the store holds no close or a whole one
      const inv = run(['invoices', P, '--config', A, '--format', 'json'], { timeout: ms(60000) });
      if (inv.code !== 0)
        assert.match(inv.stderr, new RegExp(`period ${P} has not been closed`), `no close yet (${how}): ${inv.stderr}`);
      else assert.equal(inv.stdout, wantB[0], `a close the kill did not stop is the whole close (${how})`);
      outcomes.push(`${how}: ${e.signal ?? `exit ${e.code}`}, ${inv.code ? 'no close' : 'closed'}`);
    }
    t.diagnostic(`kills: ${outcomes.join('; ')}`);
    assert.ok(outcomes.some((o) => /after .*SIGKILL/.test(o)), 'some kills landed before the write');
    assert.ok(outcomes.some((o) => /into the write: SIGKILL/.test(o)), 'some kills landed while it wrote');

    // then A to the end: the same documents as B's
    const docsA = closeCli(A);
    assert.deepEqual(sansClosed(docsA), sansClosed(docsB));
    assert.deepEqual(read(A), wantB, 'invoices, statements and settlements of A and B are identical');
    const check = run(['wallet', '--config', A, '--check']);
    assert.equal(check.code, 0, check.stderr);
    assert.match(check.stdout, /every one sums to zero/);

    // closes at once on one store: each makes the documents or is told to
    // run again; what is left is the one close
    const together = await Promise.all([0, 1, 2].map(() => new Promise((res) => {
      const child = spawn(BIN, ['close-period', P, '--config', B, '--format', 'json'],
        { stdio: ['ignore', 'ignore', 'pipe'], env: childEnv() });
      let stderr = '';
      child.stderr.on('data', (x) => { stderr += x; });
      child.on('close', (code) => res({ code, stderr }));
    })));
    for (const r of together) {
      if (r.code !== 0) {
        assert.equal(r.code, 1, r.stderr);
        assert.match(r.stderr, /another close of this store landed while this one ran; run it again/);
      }
    }
    assert.ok(together.some((r) => r.code === 0), 'one of them closed');
    assert.deepEqual(read(B), wantB, 'and the documents are the same');
    // how long a close of this store takes, for the record
    t.diagnostic(`close of ${recs.length} records, ${docsB.invoices.length} invoices: ${took} ms`);
  });
});
