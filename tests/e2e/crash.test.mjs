// Crash safety of metering: under load (streams and not), the gateway is
// killed with SIGKILL ten times at random moments and restarted. At the end
// every request the provider served is in the ledger exactly once —
// completed, or settled as interrupted at the next start — and none twice.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { ms, sha256, sleep, startGateway, startSim, stopAll, thisMonth, until } from './lib.mjs';

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
