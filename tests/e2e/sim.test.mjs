// The simulated provider on its own: OpenAI's shapes, the determinism and
// token-counting rules of docs/sim.md, forced tool calls, stream pacing,
// every fault, and the /sim/stats ledger the gateway's tests compare their
// metering with. The Anthropic dialect has its own file,
// sim_anthropic.test.mjs.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as lib from './lib.mjs';

let sim, paced, ruled, keyed;

before(async () => {
  sim = await lib.startSim({ seed: 7 });
  paced = await lib.startSim({ seed: 7, ttftMs: 200, tps: 50 });
  ruled = await lib.startSim({ seed: 5, faults: ['429:30', 'cut:20'] });
  keyed = await lib.startSim({ keyEnv: 'TG_E2E_SIM_ONLY_KEY', env: { TG_E2E_SIM_ONLY_KEY: 'sk-sim-secret' } });
});
after(lib.stopAll);

/** The sim's token count (docs/sim.md), ported. */
function tokens(text) {
  let n = 0;
  let run = false;
  for (const b of Buffer.from(text, 'utf8')) {
    const alnum = (b >= 48 && b <= 57) || (b >= 65 && b <= 90) || (b >= 97 && b <= 122);
    if (alnum) {
      if (!run) n++;
      run = true;
      continue;
    }
    run = false;
    if ([32, 9, 10, 13, 12, 11].includes(b) || (b & 0xc0) === 0x80) continue;
    n++;
  }
  return n;
}

const post = (s, p, body, headers = {}) =>
  fetch(`${s.url}${p}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const MESSAGES = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: [{ type: 'text', text: 'Héllo, wörld! 42 cats' }, { type: 'image_url', image_url: { url: 'x' } }] },
];
const CHAT = { model: 'gpt-4o-mini', messages: MESSAGES };

/** Reads a raw response until the peer closes; the bytes as text. */
async function rawUntilClose(s, body, headers) {
  const c = await lib.Raw.connect(s.port);
  await c.write(lib.httpRequest('POST', '/v1/chat/completions', { body, headers: { 'Content-Type': 'application/json', ...headers } }));
  await c.closed({ timeout: lib.ms(5000) });
  return c;
}

describe('chat completions', () => {
  test('buffered answer: OpenAI shape, counted prompt, C one-token words', async () => {
    const r = await post(sim, '/v1/chat/completions', CHAT);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /application\/json/);
    const b = await r.json();
    assert.match(b.id, /^chatcmpl-sim-[0-9a-f]{16}$/);
    assert.equal(b.object, 'chat.completion');
    assert.equal(typeof b.created, 'number');
    assert.equal(b.model, 'gpt-4o-mini');
    assert.equal(b.system_fingerprint, 'fp_sim');
    assert.equal(b.choices.length, 1);
    const ch = b.choices[0];
    assert.deepEqual(Object.keys(ch).sort(), ['finish_reason', 'index', 'logprobs', 'message']);
    assert.deepEqual(ch.message.role, 'assistant');
    assert.equal(ch.message.refusal, null);
    assert.equal(ch.finish_reason, 'stop');
    // (3 + role + content) per message + 3; the image part counts 0
    const want = 3 + 1 + tokens('Be brief.') + 3 + 1 + tokens('Héllo, wörld! 42 cats') + 3;
    assert.equal(want, 24);
    assert.deepEqual(b.usage, {
      prompt_tokens: 24, completion_tokens: b.usage.completion_tokens,
      total_tokens: 24 + b.usage.completion_tokens,
      prompt_tokens_details: { cached_tokens: 0 }, completion_tokens_details: { reasoning_tokens: 0 },
    });
    assert.ok(b.usage.completion_tokens >= 16 && b.usage.completion_tokens <= 64);
    assert.equal(tokens(ch.message.content), b.usage.completion_tokens);
    assert.match(ch.message.content, /^[a-z]+( [a-z]+)*$/);
  });

  test('deterministic: same request same words; max_tokens cuts a prefix', async () => {
    const a = await (await post(sim, '/v1/chat/completions', CHAT)).json();
    const b = await (await post(sim, '/v1/chat/completions', CHAT)).json();
    assert.notEqual(a.id, b.id);
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
    const other = await (await post(sim, '/v1/chat/completions', { ...CHAT, model: 'gpt-4o' })).json();
    assert.notEqual(other.choices[0].message.content, a.choices[0].message.content);
    const cut = await (await post(sim, '/v1/chat/completions', { ...CHAT, max_completion_tokens: 3 })).json();
    assert.equal(cut.usage.completion_tokens, 3);
    assert.equal(cut.choices[0].finish_reason, 'length');
    assert.ok(a.choices[0].message.content.startsWith(cut.choices[0].message.content));
    const big = await (await post(sim, '/v1/chat/completions', { ...CHAT, max_tokens: 1000 })).json();
    assert.equal(big.choices[0].finish_reason, 'stop');
    assert.equal(big.choices[0].message.content, a.choices[0].message.content);
    // the other sims share seed 7: the same answer
    const p = await (await post(paced, '/v1/chat/completions', { ...CHAT, max_tokens: 2 })).json();
    assert.ok(a.choices[0].message.content.startsWith(p.choices[0].message.content));
  });

  test('stream: role chunk, one chunk per token, finish, usage only when asked, [DONE]', async () => {
    const ref = await (await post(sim, '/v1/chat/completions', CHAT)).json();
    for (const include of [false, true]) {
      const body = { ...CHAT, stream: true, ...(include ? { stream_options: { include_usage: true } } : {}) };
      const r = await post(sim, '/v1/chat/completions', body);
      assert.equal(r.status, 200);
      assert.match(r.headers.get('content-type'), /text\/event-stream/);
      const events = lib.sseData(await r.text());
      assert.equal(events.at(-1), '[DONE]');
      const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
      const n = ref.usage.completion_tokens;
      assert.equal(chunks.length, 1 + n + 1 + (include ? 1 : 0));
      for (const c of chunks) {
        assert.equal(c.object, 'chat.completion.chunk');
        assert.equal(c.id, chunks[0].id);
        assert.equal(c.model, 'gpt-4o-mini');
        if (include && c !== chunks.at(-1)) assert.equal(c.usage, null);
        if (!include) assert.ok(!('usage' in c));
      }
      assert.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '', refusal: null });
      const text = chunks.slice(1, 1 + n).map((c) => c.choices[0].delta.content).join('');
      assert.equal(text, ref.choices[0].message.content);
      const fin = chunks[1 + n].choices[0];
      assert.deepEqual(fin.delta, {});
      assert.equal(fin.finish_reason, 'stop');
      if (include) {
        assert.deepEqual(chunks.at(-1).choices, []);
        assert.deepEqual(chunks.at(-1).usage, ref.usage);
      }
    }
  });

  test('X-Sim-Cached-Tokens: cached prompt tokens in usage, stats and /sim/requests', async () => {
    await sim.reset();
    const h = (n) => ({ 'X-Sim-Cached-Tokens': String(n), 'X-Request-Id': `cached-${n}` });
    const a = await (await post(sim, '/v1/chat/completions', CHAT, h(10))).json();
    assert.equal(a.usage.prompt_tokens, 24);
    assert.deepEqual(a.usage.prompt_tokens_details, { cached_tokens: 10 });
    // never more than the prompt; the same on a stream's usage chunk
    const body = { ...CHAT, stream: true, stream_options: { include_usage: true } };
    const events = lib.sseData(await (await post(sim, '/v1/chat/completions', body, h(1000))).text());
    const last = JSON.parse(events.at(-2));
    assert.deepEqual(last.usage.prompt_tokens_details, { cached_tokens: 24 });
    // the SDK reads it
    const c = await sim.client().chat.completions.create(CHAT, { headers: h(3) });
    assert.equal(c.usage.prompt_tokens_details.cached_tokens, 3);
    const s = await sim.stats();
    assert.equal(s.models['gpt-4o-mini'].cached_tokens, 10 + 24 + 3);
    const served = (await (await fetch(`${sim.url}/sim/requests`)).json()).requests;
    assert.deepEqual(served.map((r) => [r.id, r.cached_tokens]),
      [['cached-10', 10], ['cached-1000', 24], ['cached-3', 3]]);
    // bad values and other endpoints: a 400 that says why, nothing billed
    for (const [p, b, v, re] of [
      ['/v1/chat/completions', CHAT, 'many', /not a whole number/],
      ['/v1/chat/completions', CHAT, '-1', /not a whole number/],
      ['/v1/chat/completions', CHAT, '4294967296', /from 0 to 4294967295/],
      ['/v1/completions', { model: 'm', prompt: 'x' }, '1', /chat completions and messages only/],
    ]) {
      const r = await post(sim, p, b, { 'X-Sim-Cached-Tokens': v });
      assert.equal(r.status, 400, `${p} ${v}`);
      const e = await r.json();
      lib.assertErrorShape(e);
      assert.match(e.error.message, re);
    }
    assert.equal((await sim.stats()).models['gpt-4o-mini'].requests, 3);
  });

  test('the official SDK streams it', async () => {
    const client = sim.client();
    const ref = await client.chat.completions.create(CHAT);
    const s = await client.chat.completions.create({ ...CHAT, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage;
    for await (const c of s) {
      text += c.choices[0]?.delta?.content ?? '';
      usage = c.usage ?? usage;
    }
    assert.equal(text, ref.choices[0].message.content);
    assert.deepEqual(usage, ref.usage);
  });

  test('pacing: ttft before the first token, then tokens_per_sec', async () => {
    const t0 = Date.now();
    const r = await post(paced, '/v1/chat/completions', { ...CHAT, stream: true, max_tokens: 11 });
    const reader = r.body.getReader();
    const arrivals = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const n = (Buffer.from(value).toString().match(/"content":"[^"]/g) ?? []).length;
      for (let i = 0; i < n; i++) arrivals.push(Date.now() - t0);
    }
    assert.equal(arrivals.length, 11);
    assert.ok(arrivals[0] >= 190, `first token after ${arrivals[0]} ms`);
    const spread = arrivals.at(-1) - arrivals[0];
    // 10 gaps at 50 per second: 200 ms
    assert.ok(spread >= 170 && spread < lib.ms(600), `tokens spread over ${spread} ms`);
  });
});

describe('tool calls', () => {
  const FUNCTIONS = [
    { type: 'function', function: { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] } } },
    { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: { zone: { type: 'string' } } } } },
  ];
  const FORCED = { ...CHAT, tools: FUNCTIONS, tool_choice: 'required' };

  test('forced: one call of the first tool, arguments a JSON object of its properties', async () => {
    const client = sim.client();
    const b = await client.chat.completions.create(FORCED);
    const ch = b.choices[0];
    assert.equal(ch.finish_reason, 'tool_calls');
    assert.equal(ch.message.content, null);
    assert.equal(ch.message.refusal, null);
    assert.equal(ch.message.tool_calls.length, 1);
    const call = ch.message.tool_calls[0];
    assert.deepEqual(Object.keys(call).sort(), ['function', 'id', 'type']);
    assert.match(call.id, /^call_sim_[0-9a-f]{16}$/);
    assert.equal(call.type, 'function');
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.deepEqual(Object.keys(args), ['city', 'unit']);
    for (const v of Object.values(args)) assert.match(v, /^[a-z]+( [a-z]+){0,2}$/);
    assert.equal(b.usage.completion_tokens, tokens(call.function.arguments));
    assert.equal(b.usage.prompt_tokens, 24, 'tool definitions count 0');
    // deterministic; a named function; no properties: {}
    const again = await client.chat.completions.create(FORCED);
    assert.equal(again.choices[0].message.tool_calls[0].function.arguments, call.function.arguments);
    const named = await client.chat.completions.create({ ...FORCED, tool_choice: { type: 'function', function: { name: 'get_time' } } });
    assert.equal(named.choices[0].message.tool_calls[0].function.name, 'get_time');
    assert.deepEqual(Object.keys(JSON.parse(named.choices[0].message.tool_calls[0].function.arguments)), ['zone']);
    const bare = await client.chat.completions.create({ ...CHAT, tools: [{ type: 'function', function: { name: 'ping' } }], tool_choice: 'required' });
    assert.equal(bare.choices[0].message.tool_calls[0].function.arguments, '{}');
    assert.equal(bare.usage.completion_tokens, 2);
    // tools without a forced call: text, as without tools
    const ref = await client.chat.completions.create(CHAT);
    for (const choice of ['auto', 'none', undefined]) {
      const t = await client.chat.completions.create({ ...CHAT, tools: FUNCTIONS, tool_choice: choice });
      assert.equal(t.choices[0].finish_reason, 'stop');
      assert.equal(t.choices[0].message.content, ref.choices[0].message.content);
      assert.ok(!('tool_calls' in t.choices[0].message));
    }
  });

  test('forced and streamed: tool_calls deltas add up to the buffered call', async () => {
    const client = sim.client();
    const ref = await client.chat.completions.create(FORCED);
    const call = ref.choices[0].message.tool_calls[0];
    const s = await client.chat.completions.create({ ...FORCED, stream: true, stream_options: { include_usage: true } });
    const chunks = [];
    for await (const c of s) chunks.push(c);
    const first = chunks[0].choices[0].delta;
    assert.equal(first.role, 'assistant');
    assert.equal(first.content, null);
    assert.deepEqual({ ...first.tool_calls[0], id: 'x' }, { index: 0, id: 'x', type: 'function', function: { name: 'get_weather', arguments: '' } });
    assert.match(first.tool_calls[0].id, /^call_sim_/);
    const pieces = chunks.slice(1, -2).map((c) => {
      const tc = c.choices[0].delta.tool_calls;
      assert.equal(tc.length, 1);
      assert.equal(tc[0].index, 0);
      assert.deepEqual(Object.keys(tc[0].function), ['arguments']);
      assert.equal(tokens(tc[0].function.arguments), 1, 'one token per chunk');
      return tc[0].function.arguments;
    });
    assert.equal(pieces.join(''), call.function.arguments);
    assert.equal(chunks.at(-2).choices[0].finish_reason, 'tool_calls');
    assert.deepEqual(chunks.at(-1).usage, ref.usage);
    // the SDK's stream helper puts the call back together
    const fin = await client.chat.completions.stream(FORCED).finalChatCompletion();
    const got = fin.choices[0].message.tool_calls[0];
    assert.equal(got.function.name, 'get_weather');
    assert.deepEqual(JSON.parse(got.function.arguments), JSON.parse(call.function.arguments));
    assert.equal(fin.choices[0].finish_reason, 'tool_calls');
  });

  test('cut by max_tokens: a prefix of the arguments, finish_reason length', async () => {
    const ref = await sim.client().chat.completions.create(FORCED);
    const full = ref.choices[0].message.tool_calls[0].function.arguments;
    const cut = await sim.client().chat.completions.create({ ...FORCED, max_tokens: 5 });
    const args = cut.choices[0].message.tool_calls[0].function.arguments;
    assert.equal(cut.choices[0].finish_reason, 'length');
    assert.equal(cut.usage.completion_tokens, 5);
    assert.equal(tokens(args), 5);
    assert.ok(full.startsWith(args), `${args} is a prefix of ${full}`);
  });

  test('tools and tool_choice are validated as OpenAI does', async () => {
    const cases = [
      [{ tools: [] }, 'tools', /empty array/],
      [{ tools: {} }, 'tools', /expected an array/],
      [{ tools: [{ function: { name: 'x' } }] }, 'tools', /tools\[0\]\.type/],
      [{ tools: [{ type: 'retrieval' }] }, 'tools', /'function' tools only/],
      [{ tools: [{ type: 'function' }] }, 'tools', /tools\[0\]\.function'/],
      [{ tools: [{ type: 'function', function: {} }] }, 'tools', /tools\[0\]\.function\.name/],
      [{ tools: [{ type: 'function', function: { name: 'bad name!' } }] }, 'tools', /does not match pattern/],
      [{ tools: [{ type: 'function', function: { name: 'x'.repeat(65) } }] }, 'tools', /does not match pattern/],
      [{ tools: [{ type: 'function', function: { name: 'x', parameters: [] } }] }, 'tools', /parameters/],
      [{ tool_choice: 'required' }, 'tool_choice', /only allowed when 'tools' are specified/],
      [{ tools: FUNCTIONS, tool_choice: 'always' }, 'tool_choice', /'required'/],
      [{ tools: FUNCTIONS, tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice', /function 'nope' not found/],
      [{ tools: FUNCTIONS, tool_choice: { type: 'function', function: {} } }, 'tool_choice', /tool_choice\.function\.name/],
    ];
    for (const [extra, param, re] of cases) {
      const r = await post(sim, '/v1/chat/completions', { ...CHAT, ...extra });
      assert.equal(r.status, 400, JSON.stringify(extra));
      const e = lib.assertErrorShape(await r.json(), { type: 'invalid_request_error' });
      assert.equal(e.param, param);
      assert.match(e.message, re, JSON.stringify(extra));
    }
  });
});

describe('completions and embeddings', () => {
  test('completions: default max_tokens 16, prompt arrays, streams', async () => {
    const b = await (await post(sim, '/v1/completions', { model: 'm', prompt: ['Say this', 'is a test.'] })).json();
    assert.equal(b.object, 'text_completion');
    assert.match(b.id, /^cmpl-sim-/);
    assert.equal(b.usage.prompt_tokens, 2 + 4);
    assert.equal(b.usage.completion_tokens, 16);
    assert.equal(b.choices[0].finish_reason, 'length');
    assert.deepEqual(Object.keys(b.choices[0]).sort(), ['finish_reason', 'index', 'logprobs', 'text']);
    const r = await post(sim, '/v1/completions', { model: 'm', prompt: ['Say this', 'is a test.'], stream: true });
    const ev = lib.sseData(await r.text());
    assert.equal(ev.at(-1), '[DONE]');
    const chunks = ev.slice(0, -1).map((e) => JSON.parse(e));
    assert.ok(chunks.every((c) => c.object === 'text_completion'));
    assert.equal(chunks.map((c) => c.choices[0].text).join(''), b.choices[0].text);
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  });

  test('embeddings: float and base64 carry the same unit float32 vectors', async () => {
    const input = ['The food was delicious.', 'The waiter was friendly.'];
    const f = await (await post(sim, '/v1/embeddings', { model: 'text-embedding-3-small', input })).json();
    const b = await (await post(sim, '/v1/embeddings', { model: 'text-embedding-3-small', input, encoding_format: 'base64' })).json();
    assert.equal(f.object, 'list');
    assert.equal(f.model, 'text-embedding-3-small');
    assert.deepEqual(f.usage, { prompt_tokens: 10, total_tokens: 10 });
    for (let i = 0; i < 2; i++) {
      assert.equal(f.data[i].object, 'embedding');
      assert.equal(f.data[i].index, i);
      assert.equal(f.data[i].embedding.length, 16);
      const raw = Buffer.from(b.data[i].embedding, 'base64');
      const v = Array.from({ length: 16 }, (_, k) => raw.readFloatLE(4 * k));
      assert.deepEqual(f.data[i].embedding.map(Math.fround), v);
      const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
      assert.ok(Math.abs(norm - 1) < 1e-5, `norm ${norm}`);
    }
    assert.notDeepEqual(f.data[0].embedding, f.data[1].embedding);
    const sdk = await sim.client().embeddings.create({ model: 'text-embedding-3-small', input });
    assert.deepEqual(Array.from(sdk.data[1].embedding), f.data[1].embedding.map(Math.fround));
    const d = await (await post(sim, '/v1/embeddings', { model: 'e', input: [[1, 2, 3], [4]], dimensions: 3 }, { 'X-Request-Id': 'emb-1' })).json();
    assert.equal(d.data[0].embedding.length, 3);
    assert.equal(d.usage.prompt_tokens, 4);
    // billed: the prompt, no completion tokens
    const served = (await (await fetch(`${sim.url}/sim/requests`)).json()).requests.find((r) => r.id === 'emb-1');
    assert.deepEqual(served, { id: 'emb-1', model: 'e', dialect: 'openai', stream: false, fault: 'none', prompt_tokens: 4, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0 });
  });

  test('models list', async () => {
    const r = await fetch(`${sim.baseURL}/models`);
    const b = await r.json();
    assert.equal(b.object, 'list');
    const ids = b.data.map((m) => m.id);
    for (const id of ['sim-fast', 'sim-premium', 'gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small'])
      assert.ok(ids.includes(id), id);
    assert.deepEqual(b.data[0], { id: 'sim-fast', object: 'model', created: 0, owned_by: 'tollgate-sim' });
  });
});

describe('errors', () => {
  test('400s name the field; 404; 405', async () => {
    const cases = [
      ['{"model":', null],
      [{ messages: MESSAGES }, 'model'],
      [{ model: 'm' }, 'messages'],
      [{ model: 'm', messages: [] }, 'messages'],
      [{ ...CHAT, n: 2 }, 'n'],
      [{ ...CHAT, max_tokens: 0 }, 'max_tokens'],
      [{ ...CHAT, stream: 'yes' }, 'stream'],
    ];
    for (const [body, param] of cases) {
      const r = await post(sim, '/v1/chat/completions', body);
      assert.equal(r.status, 400, JSON.stringify(body));
      const e = lib.assertErrorShape(await r.json(), { type: 'invalid_request_error' });
      assert.equal(e.param, param);
    }
    const n = await post(sim, '/v1/chat/completions', { ...CHAT, n: 2 });
    assert.match((await n.json()).error.message, /n must be 1/);
    const r404 = await post(sim, '/v1/nothing', CHAT);
    assert.equal(r404.status, 404);
    lib.assertErrorShape(await r404.json());
    const r405 = await fetch(`${sim.baseURL}/chat/completions`);
    assert.equal(r405.status, 405);
    assert.equal(r405.headers.get('allow'), 'POST');
    lib.assertErrorShape(await r405.json());
    const bad = await post(sim, '/v1/chat/completions', CHAT, { 'X-Sim-Fault': 'explode' });
    assert.equal(bad.status, 400);
    assert.match(lib.assertErrorShape(await bad.json()).message, /timeout, reset, cut and malformed/);
  });

  test('required key: 401 without it, served with it, /sim/ open', async () => {
    const no = await post(keyed, '/v1/chat/completions', CHAT);
    assert.equal(no.status, 401);
    lib.assertErrorShape(await no.json(), { code: 'invalid_api_key' });
    const wrong = await post(keyed, '/v1/chat/completions', CHAT, { Authorization: 'Bearer sk-nope' });
    assert.equal(wrong.status, 401);
    const ok = await post(keyed, '/v1/chat/completions', CHAT, { Authorization: 'Bearer sk-sim-secret' });
    assert.equal(ok.status, 200);
    const s = await keyed.stats();
    assert.equal(s.rejected, 2);
    assert.equal(s.models['gpt-4o-mini'].requests, 1);
  });
});

describe('faults and stats', () => {
  test('429, 500, 503: OpenAI errors, billed nothing', async () => {
    await sim.reset();
    const r = await post(sim, '/v1/chat/completions', CHAT, { 'X-Sim-Fault': '429' });
    assert.equal(r.status, 429);
    assert.equal(r.headers.get('retry-after'), '1');
    lib.assertErrorShape(await r.json(), { type: 'rate_limit_error', code: 'rate_limit_exceeded' });
    const e = await lib.sdkError(() => sim.client().chat.completions.create(CHAT, { headers: { 'X-Sim-Fault': '500' } }), 500);
    assert.equal(e.type, 'server_error');
    const r3 = await post(sim, '/v1/embeddings', { model: 'e', input: 'x' }, { 'X-Sim-Fault': '503' });
    assert.equal(r3.status, 503);
    lib.assertErrorShape(await r3.json());
    const s = await sim.stats();
    assert.equal(s.requests, 3);
    assert.deepEqual(s.faults, { 429: 1, 500: 1, 503: 1, timeout: 0, reset: 0, cut: 0, malformed: 0 });
    assert.deepEqual(s.models['gpt-4o-mini'], { requests: 2, streams: 0, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0 });
  });

  test('reset closes with RST; timeout never answers', async () => {
    const c = await rawUntilClose(sim, CHAT, { 'X-Sim-Fault': 'reset' });
    assert.equal(c.buf.length, 0);
    const t = await lib.Raw.connect(sim.port);
    await t.write(lib.httpRequest('POST', '/v1/chat/completions', { body: CHAT, headers: { 'X-Sim-Fault': 'timeout' } }));
    await assert.rejects(t.wait((x) => x.buf.length > 0, { timeout: 500 }), /no data/);
    t.destroy();
    // still serving, and the hung request is gone
    assert.equal((await post(sim, '/v1/chat/completions', CHAT)).status, 200);
    const s = await sim.stats();
    assert.equal(s.faults.reset, 1);
    assert.equal(s.faults.timeout, 1);
  });

  test('malformed: a JSON prefix, or a stream event that is not JSON', async () => {
    const r = await post(sim, '/v1/chat/completions', CHAT, { 'X-Sim-Fault': 'malformed' });
    assert.equal(r.status, 200);
    const text = await r.text();
    assert.ok(text.startsWith('{"id":"chatcmpl-sim-'));
    assert.throws(() => JSON.parse(text));
    const rs = await post(sim, '/v1/chat/completions', { ...CHAT, stream: true }, { 'X-Sim-Fault': 'malformed' });
    const ev = lib.sseData(await rs.text());
    assert.equal(ev.length, 3);
    JSON.parse(ev[0]);
    assert.throws(() => JSON.parse(ev[1]));
    assert.equal(ev[2], '[DONE]');
  });

  test('cut: half the stream without [DONE], billed for what was sent', async () => {
    await sim.reset();
    const body = { ...CHAT, max_tokens: 40, stream: true };
    const c = await rawUntilClose(sim, body, { 'X-Sim-Fault': 'cut' });
    const res = lib.parseResponse(c.buf, false);
    assert.equal(res, null, 'the chunked body never ends');
    const text = c.buf.toString();
    assert.ok(!text.includes('[DONE]'));
    assert.equal((text.match(/"content":"[^"]/g) ?? []).length, 20);
    const buffered = await rawUntilClose(sim, { ...CHAT, max_tokens: 40 }, { 'X-Sim-Fault': 'cut' });
    assert.equal(lib.parseResponse(buffered.buf, false), null, 'the buffered body never ends');
    assert.match(buffered.buf.toString(), /^HTTP\/1.1 200/);
    const s = await sim.stats();
    assert.equal(s.faults.cut, 2);
    // the stream bills its 20 sent tokens; the buffered answer bills whole
    assert.deepEqual(s.models['gpt-4o-mini'], { requests: 2, streams: 1, prompt_tokens: 48, completion_tokens: 60, cached_tokens: 0, cache_write_tokens: 0 });
  });

  test('a client that leaves mid-stream is billed for what was sent', async () => {
    await paced.reset();
    const c = await lib.Raw.connect(paced.port);
    await c.write(lib.httpRequest('POST', '/v1/chat/completions', { body: { ...CHAT, stream: true, max_tokens: 60 } }));
    await c.wait((x) => (x.buf.toString().match(/"content":"[^"]/g) ?? []).length >= 3, { timeout: lib.ms(3000) });
    c.destroy();
    const m = await lib.until(async () => {
      const s = await paced.stats();
      return s.models['gpt-4o-mini'];
    }, { what: 'the aborted stream in the stats' });
    assert.equal(m.prompt_tokens, 24);
    assert.ok(m.completion_tokens >= 3 && m.completion_tokens < 60, `${m.completion_tokens} billed`);
  });

  test('fault rules draw the same faults after a reset', async () => {
    const run = async () => {
      await ruled.reset();
      const out = [];
      for (let i = 0; i < 60; i++) {
        const c = await rawUntilClose(ruled, CHAT, { Connection: 'close' });
        out.push(c.buf.toString().slice(9, 12));
      }
      return out;
    };
    const a = await run();
    const b = await run();
    assert.deepEqual(a, b);
    const s = await ruled.stats();
    assert.equal(s.requests, 60);
    assert.equal(s.faults['429'], a.filter((x) => x === '429').length);
    assert.ok(s.faults['429'] > 5 && s.faults.cut > 2, JSON.stringify(s.faults));
    // "none" skips the rules
    for (let i = 0; i < 10; i++)
      assert.equal((await post(ruled, '/v1/chat/completions', CHAT, { 'X-Sim-Fault': 'none' })).status, 200);
  });
});
