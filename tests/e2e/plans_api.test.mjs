// Plans through the admin API on the real gateway: a plan made with PUT
// holds a customer to its terms at once (models, hard cap, credits), shows
// in GET next to the file's plans, survives a reload and a restart, can be
// replaced and, once no customer is on it, deleted; the file's plans and
// customers stay the file's; bad input is refused with a message that
// says what to fix, and changes nothing.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { assertErrorShape, ms, run, sha256, startGateway, startSim, stopAll, until } from './lib.mjs';

after(stopAll);

const KEYS = { app: 'sk-papi-app', filed: 'sk-papi-filed', admin: 'sk-papi-admin' };
const USD = 1000000000n;
const nanos = (usd) => BigInt(usd.replace('.', '')); // "0.000123400" -> 123400n

let gw;
let config;

before(async () => {
  const sim = await startSim({ seed: 5, conf: { completion_tokens: { min: 20, max: 60 } } });
  config = {
    providers: [{ name: 'sim', base_url: sim.baseURL }],
    offerings: [
      // dear on purpose: a request is a few hundredths of a cent
      { id: 'sim/fast', provider: 'sim', model: 'sim-fast', price: { input: '2.00', output: '40.00' } },
      { id: 'sim/premium', provider: 'sim', model: 'sim-premium', price: { input: '5.00', output: '80.00' } },
    ],
    models: [{ name: 'fast', offerings: ['sim/fast'] }, { name: 'premium', offerings: ['sim/premium'] }],
    plans: [{ id: 'starter', included_credits: 100, overage: '0.01', models: ['fast', 'premium'] }],
    apps: [{ id: 'app', create_customers: true, default_plan: 'starter' }],
    customers: [{ id: 'filed', app: 'app', plan: 'starter' }],
    keys: [
      { id: 'app', sha256: sha256(KEYS.app), app: 'app' },
      { id: 'filed', sha256: sha256(KEYS.filed), customer: 'filed' },
      { id: 'admin', sha256: sha256(KEYS.admin), admin: true },
    ],
    metering: { flush_ms: 20 },
  };
  gw = await startGateway(config);
});

async function admin(method, path, body, key = KEYS.admin) {
  const r = await gw.fetch(path, {
    method,
    headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: r.status, body: await r.json() };
}

const plans = async () => (await admin('GET', '/admin/v1/plans')).body.plans;

/** A chat request billed to customer through the app key. */
async function ask(customer, { model = 'fast', maxTokens = 60 } = {}) {
  const r = await gw.post('/v1/chat/completions',
    { model, max_tokens: maxTokens, messages: [{ role: 'user', content: 'hello there' }] },
    { key: KEYS.app, headers: { 'X-Tollgate-Customer': customer } });
  return { status: r.status, body: await r.json(), credits: r.headers.get('x-tollgate-credits') };
}

// a custom plan for one large customer: 0.001 USD credits, a 0.01 USD cap,
// only the fast model
const CUSTOM = { fee: '500.00', credit: '0.001', overage: '0', hard_cap: { usd: '0.01' },
                 models: ['fast'], thresholds: [50] };

describe('plans made through the admin API', () => {
  test('GET lists the file\'s plans; PUT makes a plan GET shows, and takes GET\'s output back', async () => {
    const before = await plans();
    assert.deepEqual(before.map((p) => [p.id, p.source]), [['starter', 'file']]);
    assert.equal(before[0].included_credits, '100.000000000');
    assert.equal(before[0].runs.max_steps, null, 'left to the app');

    const made = await admin('PUT', '/admin/v1/plans/acme-custom', CUSTOM);
    assert.equal(made.status, 201, JSON.stringify(made.body));
    const p = made.body.plan;
    assert.equal(p.id, 'acme-custom');
    assert.equal(p.source, 'api');
    assert.equal(p.fee, '500.000000000');
    assert.equal(p.credit, '0.001000000');
    assert.deepEqual(p.hard_cap, { usd: '0.010000000' });
    assert.deepEqual(p.models, ['fast']);
    assert.deepEqual(p.thresholds, [50]);
    assert.equal(p.overage, '0.000000000');

    const one = await admin('GET', '/admin/v1/plans/acme-custom');
    assert.equal(one.status, 200);
    assert.deepEqual(one.body.plan, p);
    assert.deepEqual((await plans()).map((q) => [q.id, q.source]), [['starter', 'file'], ['acme-custom', 'api']]);

    // what GET says is what PUT takes: nulls, id and source included
    const again = await admin('PUT', '/admin/v1/plans/acme-custom', p);
    assert.equal(again.status, 200, JSON.stringify(again.body));
    assert.deepEqual(again.body.plan, p);
    // and the file's plan, under another id
    const copy = await admin('PUT', '/admin/v1/plans/starter-copy', { ...before[0], id: undefined });
    assert.equal(copy.status, 201, JSON.stringify(copy.body));
    assert.deepEqual({ ...copy.body.plan, id: 'starter', source: 'file' }, before[0]);
    // ids are percent-decoded from the path
    const slash = await admin('PUT', '/admin/v1/plans/team%2Facme', { included_credits: '2.5' });
    assert.equal(slash.status, 201, JSON.stringify(slash.body));
    assert.equal(slash.body.plan.id, 'team/acme');
    assert.equal(slash.body.plan.included_credits, '2.500000000');
  });

  test('a customer put on an API plan is held to it at once: its models, its credits, its hard cap', async () => {
    const put = await admin('PUT', '/admin/v1/customers/acme/plan', { plan: 'acme-custom', app: 'app' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    assert.deepEqual(put.body, { customer: 'acme', app: 'app', plan: 'acme-custom' });

    const premium = await ask('acme', { model: 'premium' });
    assert.equal(premium.status, 403);
    assert.equal(premium.body.error.code, 'model_not_in_plan');

    let served = 0, charged = 0n, refused;
    for (let i = 0; i < 100 && !refused; i++) {
      const r = await ask('acme');
      if (r.status === 402) refused = r;
      else {
        assert.equal(r.status, 200, JSON.stringify(r.body));
        // credits of 0.001 USD: a request of a few hundredths of a cent is tens of credits
        assert.ok(Number(r.credits) > 1, `credits in the plan's unit: ${r.credits}`);
        served++;
      }
    }
    assert.ok(served > 2, `served before the cap: ${served}`);
    assert.ok(refused, 'the cap was reached');
    assert.equal(refused.body.error.code, 'hard_cap_reached');
    assert.match(refused.body.error.message, /hard cap of plan 'acme-custom', 0\.01 USD per period/);

    const recs = await gw.records(served + 2, { args: ['--customer', 'acme'] });
    for (const r of recs) assert.equal(r.plan, 'acme-custom');
    charged = recs.reduce((s, r) => s + BigInt(r.charge_nanos), 0n);
    assert.ok(charged <= USD / 100n, `never past the cap: ${charged}`);

    // the CLI reads the plan from the store too
    const w = run(['wallet', '--config', gw.configPath, '--customer', 'acme', '--format', 'json']);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(JSON.parse(w.stdout).plan, 'acme-custom');
  });

  test('API plans and customers\' plans survive a reload and a restart', async () => {
    assert.match(await gw.reload(), /configuration reloaded/);
    assert.ok((await plans()).some((p) => p.id === 'acme-custom'));
    assert.equal((await ask('acme')).status, 402, 'still at the cap of its plan');

    await gw.restart();
    assert.deepEqual((await plans()).map((p) => p.id), ['starter', 'acme-custom', 'starter-copy', 'team/acme']);
    const r = await ask('acme');
    assert.equal(r.status, 402, 'the customer\'s plan and its spending came back');
    assert.match(r.body.error.message, /plan 'acme-custom'/);
  });

  test('a file that now defines an API plan\'s id is refused on reload, and the running one stays', async () => {
    gw.writeConfig({ ...gw.config, plans: [...config.plans, { id: 'acme-custom', included_credits: 5 }] });
    const line = await gw.reload();
    assert.match(line, /reload refused/);
    assert.match(line, /API plan 'acme-custom': .* defines a plan of this id too/);
    gw.writeConfig(gw.config);
    assert.match(await gw.reload(), /configuration reloaded/);
    assert.equal((await admin('GET', '/admin/v1/plans/acme-custom')).body.plan.source, 'api');
  });

  test('DELETE refuses a plan a customer is on; once moved, the plan goes', async () => {
    const busy = await admin('DELETE', '/admin/v1/plans/acme-custom');
    assert.equal(busy.status, 409);
    assertErrorShape(busy.body, { code: 'plan_in_use' });
    assert.match(busy.body.error.message, /1 customer is on plan 'acme-custom'/);

    const moved = await admin('PUT', '/admin/v1/customers/acme/plan', { plan: 'starter' });
    assert.equal(moved.status, 200, JSON.stringify(moved.body));
    assert.equal(moved.body.app, 'app', 'a known customer keeps its app');
    const gone = await admin('DELETE', '/admin/v1/plans/acme-custom');
    assert.equal(gone.status, 200, JSON.stringify(gone.body));
    assert.deepEqual(gone.body, { deleted: 'acme-custom' });
    assert.equal((await admin('GET', '/admin/v1/plans/acme-custom')).status, 404);
    assert.equal((await admin('DELETE', '/admin/v1/plans/acme-custom')).status, 404);
    // on starter now: premium is allowed, and overage pays past the included credits
    const r = await ask('acme', { model: 'premium' });
    assert.equal(r.status, 200, JSON.stringify(r.body));
    // a customer taken off every plan is served without one
    assert.equal((await admin('PUT', '/admin/v1/customers/acme/plan', { plan: null })).body.plan, null);
    assert.equal((await ask('acme')).status, 200);
  });

  test('bad input: a message that says what to fix, and nothing changes', async () => {
    const before = await plans();
    const cases = [
      ['PUT', '/admin/v1/plans/x', 'fee: 1', 400, 'invalid_plan', /must be a JSON object/],
      ['PUT', '/admin/v1/plans/x', '[1]', 400, 'invalid_plan', /must be a JSON object/],
      ['PUT', '/admin/v1/plans/x', { fe: '1' }, 400, 'invalid_plan', /API plan 'x': unknown field 'fe'/],
      ['PUT', '/admin/v1/plans/x', { fee: '-1' }, 400, 'invalid_plan', /API plan 'x': fee: /],
      ['PUT', '/admin/v1/plans/x', { fee: '1.0000000001' }, 400, 'invalid_plan', /API plan 'x': fee: /],
      ['PUT', '/admin/v1/plans/x', { models: ['gpt-9'] }, 400, 'invalid_plan', /API plan 'x': models\[0\]: unknown model 'gpt-9'/],
      ['PUT', '/admin/v1/plans/x', { hard_cap: { usd: '1', credits: 5 } }, 400, 'invalid_plan', /hard_cap: give usd or credits, not both/],
      ['PUT', '/admin/v1/plans/x', { id: 'y' }, 400, 'invalid_plan', /id: 'y' is not the plan's id/],
      ['PUT', '/admin/v1/plans/x', { credit: '0' }, 400, 'invalid_plan', /credit: must be more than 0/],
      ['PUT', '/admin/v1/plans/bad%20id', {}, 400, 'invalid_id', /plan id is 1 to 128/],
      ['PUT', '/admin/v1/plans/starter', { fee: '1' }, 409, 'plan_in_file', /defined in .*: change it there/],
      ['DELETE', '/admin/v1/plans/starter', undefined, 409, 'plan_in_file', /defined in/],
      ['PUT', '/admin/v1/customers/filed/plan', { plan: 'team/acme' }, 409, 'customer_in_file', /change its plan there/],
      ['PUT', '/admin/v1/customers/newco/plan', { plan: 'team/acme' }, 400, 'app_required', /name its app/],
      ['PUT', '/admin/v1/customers/newco/plan', { plan: 'nope', app: 'app' }, 404, 'plan_not_found', /No plan 'nope'/],
      ['PUT', '/admin/v1/customers/newco/plan', { plan: 'team/acme', app: 'other' }, 404, 'app_not_found', /No app 'other'/],
      ['PUT', '/admin/v1/customers/acme/plan', { plan: 'team/acme', app: 'other' }, 409, 'customer_of_another_app', /belongs to app 'app'/],
      ['PUT', '/admin/v1/customers/newco/plan', { plan: 5, app: 'app' }, 400, 'invalid_customer_plan', /plan must be an id/],
      ['PUT', '/admin/v1/customers/newco/plan', { app: 'app' }, 400, 'invalid_customer_plan', /plan is required/],
      ['PUT', '/admin/v1/customers/newco/plan', { plan: 'starter', tier: 1 }, 400, 'invalid_customer_plan', /unknown member/],
    ];
    for (const [method, path, body, status, code, message] of cases) {
      const r = await admin(method, path, body);
      assert.equal(r.status, status, `${method} ${path} ${JSON.stringify(body)}: ${JSON.stringify(r.body)}`);
      assertErrorShape(r.body, { code });
      assert.match(r.body.error.message, message);
    }
    const denied = await admin('PUT', '/admin/v1/plans/x', {}, KEYS.filed);
    assert.equal(denied.status, 403);
    assertErrorShape(denied.body, { code: 'admin_key_required' });
    assert.equal((await admin('POST', '/admin/v1/plans', {})).status, 405);
    assert.deepEqual(await plans(), before, 'no refused write changed a plan');
    const w = run(['wallet', '--config', gw.configPath, '--customer', 'newco']);
    assert.notEqual(w.code, 0, 'no refused write made a customer');
  });

  test('a new customer can be made on an API plan, and requests by it are metered against that plan', async () => {
    const put = await admin('PUT', '/admin/v1/customers/newco/plan', { plan: 'team/acme', app: 'app' });
    assert.equal(put.status, 200, JSON.stringify(put.body));
    const r = await ask('newco');
    assert.equal(r.status, 200);
    const recs = await until(() => {
      const v = gw.usage(['--customer', 'newco']);
      return v.length ? v : null;
    }, { what: 'newco\'s record' });
    assert.equal(recs[0].plan, 'team/acme');
    const w = JSON.parse(run(['wallet', '--config', gw.configPath, '--customer', 'newco', '--format', 'json']).stdout);
    assert.equal(w.plan, 'team/acme');
    assert.equal(nanos(w.included_credits), 2500000000n, 'the API plan\'s 2.5 included credits');
  });
});
