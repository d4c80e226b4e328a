// The journal's failure path end to end: when a journal write fails, the
// requests whose intents it held are refused with 503 metering_unavailable
// and never reach the provider, and the gateway serves again once the
// journal can be written. The failure is a file size limit put on the
// running gateway (prlimit), with SIGXFSZ ignored so that a write past it
// fails (EFBIG) instead of killing the process.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { assertErrorShape, ms, sha256, startGateway, startSim, stopAll } from './lib.mjs';

after(stopAll);

const KEY = 'sk-journal-customer';
const prlimit = spawnSync('prlimit', ['--version']).status === 0;

function fileSizeLimit(pid, limit) { // the soft limit: raising it back needs no privilege
  const r = spawnSync('prlimit', ['--pid', String(pid), `--fsize=${limit}:`], { encoding: 'utf8' });
  assert.equal(r.status, 0, `prlimit: ${r.stderr}`);
}

test('a journal that cannot be written refuses requests with 503 metering_unavailable, unsent',
  { skip: !prlimit && 'needs prlimit (util-linux)' }, async () => {
    const sim = await startSim();
    const gw = await startGateway({
      providers: [{ name: 'sim', base_url: sim.baseURL }],
      offerings: [{ id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '0.15', output: '0.60' } }],
      models: [{ name: 'fast', offerings: ['sim/fast'] }],
      apps: [{ id: 'app' }],
      customers: [{ id: 'c1', app: 'app' }],
      keys: [{ id: 'k', sha256: sha256(KEY), customer: 'c1' }],
      metering: { flush_ms: 20 },
    }, { workers: 1, shell: "trap '' XFSZ" });
    const chat = async (rid) => {
      const r = await gw.post('/v1/chat/completions', { model: 'fast', messages: [{ role: 'user', content: 'hi' }] },
        { key: KEY, headers: { 'X-Request-Id': rid } });
      return { status: r.status, body: await r.json() };
    };

    assert.equal((await chat('journal-ok-1')).status, 200);
    fileSizeLimit(gw.proc.pid, 1); // every journal write fails from now on
    for (const rid of ['journal-refused-2', 'journal-refused-3']) {
      const { status, body } = await chat(rid);
      assert.equal(status, 503);
      assertErrorShape(body, { code: 'metering_unavailable', type: 'server_error' });
    }
    fileSizeLimit(gw.proc.pid, 'unlimited');
    assert.equal((await chat('journal-ok-4')).status, 200);

    const served = (await (await fetch(`${sim.url}/sim/requests`)).json()).requests.map((r) => r.id);
    assert.deepEqual(served.sort(), ['journal-ok-1', 'journal-ok-4'], 'refused requests never reach the provider');
    // the refused requests' outcomes were not journaled, but the ledger has them
    const recs = new Map((await gw.records(4, { timeout: ms(10000) })).map((r) => [r.rid, r]));
    for (const rid of ['journal-refused-2', 'journal-refused-3']) {
      const rec = recs.get(rid);
      assert.ok(rec, `${rid} is in the ledger`);
      assert.equal(rec.status, 503);
      assert.equal(rec.outcome, 'failed');
      assert.equal(Number(rec.charge), 0, 'nothing went upstream: nothing is charged');
    }
    assert.equal(recs.get('journal-ok-4').outcome, 'completed');
    const log = gw.proc.json().filter((l) => l.level === 'error').map((l) => l.msg).join('\n');
    assert.match(log, /request\(s\) whose intent that write held are refused/);
  });
