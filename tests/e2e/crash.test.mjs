// Crash safety of metering: under load (streams and not), the gateway is
// killed with SIGKILL ten times at random moments and restarted. At the end
// every request the provider served is in the ledger exactly once —
// completed, or settled as interrupted at the next start — and none twice.
// And of plans: killed with reservations in flight against a hard cap, the
// gateway comes back with nothing reserved, balances equal to the wallet
// ledger, which equals the usage records, and the cap still held.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ms, run, sha256, sleep, startGateway, startSim, stopAll, thisMonth, until } from './lib.mjs';

after(stopAll);

const KEY = 'sk-crash-customer';
const ROUNDS = 10;
const CLIENTS = 6;

test('kill -9 under load, ten times: every served request is billed exactly once', async () => {
  // streams pace at 150 tokens/s, so a kill lands in the middle of some
  const sim = await startSim({ seed: 3, tps: 150, conf: { completion_tokens: { min: 4, max: 60 } } });
  const gw = await startGateway({
    providers: [{ name: 'sim', base_url: sim.baseURL }],
    offerings: [{ id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '0.15', output: '0.60' } }],
    models: [{ name: 'fast', offerings: ['sim/fast'] }],
    apps: [{ id: 'app', margin: { markup_bps: 1000 } }],
    customers: [{ id: 'c1', app: 'app' }],
    keys: [{ id: 'k', sha256: sha256(KEY), customer: 'c1' }],
    metering: { flush_ms: 20 },
  });

  let seq = 0;
  let rng = 12345;
  const rand = (n) => {
    rng = (rng * 1103515245 + 12345) % 2147483648;
    return rng % n;
  };

  for (let round = 0; round < ROUNDS; round++) {
    let stop = false;
    const url = gw.url;
    const client = async () => {
      while (!stop) {
        const stream = rand(2) === 0;
        try {
          const r = await fetch(`${url}/v1/chat/completions`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json',
                       'X-Request-Id': `crash-${process.pid}-${++seq}` },
            body: JSON.stringify({ model: 'fast', stream, messages: [{ role: 'user', content: `round ${round}` }] }),
          });
          await r.text();
        } catch {
          // the gateway died under this request: expected
          if (!stop) await sleep(5);
        }
      }
    };
    const load = Array.from({ length: CLIENTS }, client);
    await sleep(ms(100 + rand(400)));
    await gw.restart({ kill: 'SIGKILL' });
    stop = true;
    await Promise.all(load);
  }

  // a clean stop and start settles the last kill's journal too
  await gw.restart();
  const served = (await (await fetch(`${sim.url}/sim/requests`)).json());
  assert.equal(served.truncated, false);
  const ids = served.requests.map((r) => r.id);
  assert.ok(ids.length > ROUNDS * CLIENTS, `the load reached the sim (${ids.length} requests)`);
  const recs = await until(() => {
    const all = gw.usage();
    return all.length >= ids.length ? all : null;
  }, { timeout: ms(20000), what: 'every served request in the ledger' });

  const count = new Map();
  for (const r of recs) count.set(r.rid, (count.get(r.rid) ?? 0) + 1);
  const twice = [...count].filter(([, n]) => n > 1);
  assert.deepEqual(twice, [], 'no request is in the ledger twice');
  const missing = ids.filter((id) => !count.has(id));
  assert.deepEqual(missing, [], 'every request the sim served is in the ledger');

  const interrupted = recs.filter((r) => r.outcome === 'interrupted');
  assert.ok(interrupted.length > 0, 'some kills landed mid-request and were settled as interrupted');
  for (const r of interrupted) {
    assert.equal(r.estimated, true);
    assert.ok(r.prompt_tokens > 0, 'an interrupted request is charged for its estimated input');
    assert.ok(BigInt(r.charge_nanos) > 0n);
  }
  const rep = gw.report(['--period', thisMonth(), '--by', 'customer']);
  assert.equal(rep.total.requests, recs.length);
  assert.equal(rep.total.interrupted, interrupted.length, 'reports show the interrupted requests');
});

test('kill -9 with reservations in flight: nothing stays reserved, balances equal the ledger, the cap held', async () => {
  const sim = await startSim({ seed: 5, tps: 300, conf: { completion_tokens: { min: 10, max: 120 } } });
  const key = 'sk-crash-capped';
  const gw = await startGateway({
    providers: [{ name: 'sim', base_url: sim.baseURL }],
    offerings: [{ id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '2.00', output: '60.00' } }],
    models: [{ name: 'fast', offerings: ['sim/fast'] }],
    // about 0.004 USD a request at most: the 0.03 cap binds during the rounds
    plans: [{ id: 'capped', credit: '0.001', included_credits: 20, overage: '0.002', hard_cap: { usd: '0.03' },
              default_max_tokens: 60 }],
    apps: [{ id: 'app' }],
    customers: [{ id: 'c1', app: 'app', plan: 'capped' }],
    keys: [{ id: 'k', sha256: sha256(key), customer: 'c1' }],
    metering: { flush_ms: 20 },
  });
  const admin = async () => {
    const r = await gw.fetch('/v1/wallet', { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(r.status, 200);
    return r.json();
  };
  const nanos = (v) => BigInt(v.replace('.', ''));
  let statuses = [];
  for (let round = 0; round < 5; round++) {
    let stop = false;
    const client = async (i) => {
      while (!stop) {
        try {
          const r = await fetch(`${gw.url}/v1/chat/completions`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ model: 'fast', stream: i % 2 === 0, messages: [{ role: 'user', content: `r${round}` }] }),
          });
          statuses.push(r.status);
          await r.text();
        } catch {
          if (!stop) await sleep(5);
        }
      }
    };
    const load = Array.from({ length: 8 }, (_, i) => client(i));
    await sleep(ms(150 + 97 * round));
    await gw.restart({ kill: 'SIGKILL' });
    stop = true;
    await Promise.all(load);
  }
  await gw.restart();
  assert.ok(statuses.includes(402), 'the cap bound during the load');
  const recs = gw.usage(['--customer', 'c1']);
  const credits = recs.reduce((s, r) => s + BigInt(r.credits_nanos), 0n);
  const charge = recs.reduce((s, r) => s + BigInt(r.charge_nanos), 0n);
  assert.ok(charge <= 30000000n, `the cap held through the kills: ${charge}`);
  const w = await until(async () => {
    const v = await admin();
    return nanos(v.included_used) + nanos(v.grants_used) + nanos(v.overage_credits) === credits ? v : null;
  }, { what: 'the wallet ledger equals the usage records' });
  assert.equal(nanos(w.charge), charge);
  assert.equal(BigInt(w.records), BigInt(recs.filter((r) => BigInt(r.credits_nanos) > 0n).length));
  assert.equal(nanos(w.live.reserved), 0n, 'nothing stays reserved after the restart');
  assert.equal(nanos(w.live.used), credits, 'the live balance is rebuilt from the ledger');
  assert.equal(nanos(w.live.charge), charge);
  const check = run(['wallet', '--config', gw.configPath, '--check']);
  assert.equal(check.code, 0, check.stderr);
});
