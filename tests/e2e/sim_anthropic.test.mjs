// The simulated provider's Anthropic dialect (POST /v1/messages) driven by
// the official @anthropic-ai/sdk: Anthropic's shapes buffered and
// streamed, forced tool calls, cache read and write tokens, errors and
// their types, the x-api-key and anthropic-version headers, faults, the
// stats, and the property the gateway's translation tests lean on: the
// same conversation gets the same text and the same token counts from
// /v1/chat/completions and /v1/messages (docs/sim.md).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import * as lib from './lib.mjs';

let sim, paced, keyed, ruled;

before(async () => {
  sim = await lib.startSim({ seed: 7 });
  paced = await lib.startSim({ seed: 7, ttftMs: 200, tps: 50 });
  keyed = await lib.startSim({ keyEnv: 'TG_E2E_SIM_ANTH_KEY', env: { TG_E2E_SIM_ANTH_KEY: 'sk-ant-sim' } });
  ruled = await lib.startSim({ seed: 5, faults: ['429:100'] });
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

const anthropic = (s, opts = {}) =>
  new Anthropic({ baseURL: s.url, apiKey: s.key ?? 'none', maxRetries: 0, ...opts });

const post = (s, p, body, headers = {}) =>
  fetch(`${s.url}${p}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const MSG = {
  model: 'sim-fast',
  max_tokens: 1024,
  system: 'Be brief.',
  messages: [{
    role: 'user',
    content: [
      { type: 'text', text: 'Héllo, wörld! 42 cats' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
    ],
  }],
};
// the same conversation in OpenAI's words
const CHAT = {
  model: 'sim-fast',
  max_tokens: 1024,
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: [{ type: 'text', text: 'Héllo, wörld! 42 cats' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
  ],
};
// (3 + role + text) per message, the system prompt as a message, + 3
const PROMPT = 3 + 1 + tokens('Be brief.') + 3 + 1 + tokens('Héllo, wörld! 42 cats') + 3;

const TOOLS = [
  {
    name: 'get_weather',
    description: 'The weather in a city',
    input_schema: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } }, required: ['city'] },
  },
  { name: 'get_time', input_schema: { type: 'object', properties: { zone: { type: 'string' } } } },
];
const FUNCTIONS = TOOLS.map((t) => ({ type: 'function', function: { name: t.name, description: t.description, parameters: t.input_schema } }));

/** Parses an Anthropic SSE body: [{event, data}] with data parsed. */
function sseEvents(text) {
  return text.split('\n\n').filter((e) => e.trim()).map((e) => {
    const lines = e.split('\n');
    const ev = lines.find((l) => l.startsWith('event:'))?.slice(6).trim();
    const data = lines.filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart()).join('\n');
    return { event: ev, data };
  });
}

async function sdkError(fn, status) {
  try {
    await fn();
  } catch (e) {
    assert.ok(e instanceof Anthropic.APIError, `an APIError: ${e}`);
    assert.equal(e.status, status, `expected HTTP ${status}, got ${e.status}: ${e.message}`);
    return e;
  }
  assert.fail(`expected an error with status ${status}, but the call succeeded`);
}

/** Asserts body is Anthropic's error shape; returns body.error. */
function assertAnthropicError(body, type) {
  assert.equal(body.type, 'error', JSON.stringify(body));
  assert.deepEqual(Object.keys(body.error).sort(), ['message', 'type']);
  assert.equal(body.error.type, type, JSON.stringify(body));
  assert.ok(body.error.message.length > 0);
  assert.match(body.request_id, /^req_sim_[0-9a-f]{16}$/);
  return body.error;
}

describe('messages', () => {
  test('buffered: Anthropic shape, counted prompt, request-id', async () => {
    const { data: m, response } = await anthropic(sim).messages.create(MSG).withResponse();
    assert.match(response.headers.get('request-id'), /^req_sim_[0-9a-f]{16}$/);
    assert.match(m.id, /^msg_sim_[0-9a-f]{16}$/);
    assert.equal(m._request_id, response.headers.get('request-id'));
    assert.deepEqual(Object.keys(m).sort(), ['content', 'id', 'model', 'role', 'stop_reason', 'stop_sequence', 'type', 'usage']);
    assert.equal(m.type, 'message');
    assert.equal(m.role, 'assistant');
    assert.equal(m.model, 'sim-fast');
    assert.equal(m.stop_reason, 'end_turn');
    assert.equal(m.stop_sequence, null);
    assert.equal(m.content.length, 1);
    assert.deepEqual(Object.keys(m.content[0]).sort(), ['text', 'type']);
    assert.equal(m.content[0].type, 'text');
    assert.match(m.content[0].text, /^[a-z]+( [a-z]+)*$/);
    assert.equal(PROMPT, 24);
    assert.deepEqual(m.usage, {
      input_tokens: 24, output_tokens: m.usage.output_tokens,
      cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
    });
    assert.ok(m.usage.output_tokens >= 16 && m.usage.output_tokens <= 64);
    assert.equal(tokens(m.content[0].text), m.usage.output_tokens);
  });

  test('deterministic; max_tokens cuts a prefix with stop_reason max_tokens; any model name', async () => {
    const c = anthropic(sim);
    const a = await c.messages.create(MSG);
    const b = await c.messages.create(MSG);
    assert.notEqual(a.id, b.id);
    assert.equal(a.content[0].text, b.content[0].text);
    const cut = await c.messages.create({ ...MSG, max_tokens: 3 });
    assert.equal(cut.stop_reason, 'max_tokens');
    assert.equal(cut.usage.output_tokens, 3);
    assert.ok(a.content[0].text.startsWith(cut.content[0].text));
    const other = await c.messages.create({ ...MSG, model: 'claude-nonexistent-9' });
    assert.equal(other.model, 'claude-nonexistent-9');
    assert.notEqual(other.content[0].text, a.content[0].text);
    // escapes decode before they count: the same prompt
    const esc = await post(sim, '/v1/messages', JSON.stringify(MSG).replace('Be brief.', 'B\\u0065 brief.'));
    assert.equal((await esc.json()).content[0].text, a.content[0].text);
  });

  test('the same conversation gives the same text and tokens via chat completions', async () => {
    const openai = sim.client();
    const c = anthropic(sim);
    const cases = [
      [MSG, CHAT],
      [{ ...MSG, max_tokens: 5 }, { ...CHAT, max_tokens: 5 }],
      // string content on one side, text blocks on the other; several turns
      [
        { model: 'gpt-4o', max_tokens: 200, system: [{ type: 'text', text: 'You are terse.' }, { type: 'text', text: 'Answer in English.' }],
          messages: [{ role: 'user', content: 'What is 2+2?' }, { role: 'assistant', content: [{ type: 'text', text: 'Four.' }] }, { role: 'user', content: 'And 3+3?' }] },
        { model: 'gpt-4o', max_completion_tokens: 200,
          messages: [{ role: 'system', content: [{ type: 'text', text: 'You are terse.' }, { type: 'text', text: 'Answer in English.' }] },
            { role: 'user', content: [{ type: 'text', text: 'What is 2+2?' }] }, { role: 'assistant', content: 'Four.' }, { role: 'user', content: 'And 3+3?' }] },
      ],
    ];
    for (const [m, ch] of cases) {
      const a = await c.messages.create(m);
      const o = await openai.chat.completions.create(ch);
      assert.equal(a.content[0].text, o.choices[0].message.content);
      assert.equal(a.usage.input_tokens, o.usage.prompt_tokens);
      assert.equal(a.usage.output_tokens, o.usage.completion_tokens);
      assert.equal(a.stop_reason === 'max_tokens', o.choices[0].finish_reason === 'length');
    }
  });

  test('SDK stream helper: the same text and usage as the buffered answer', async () => {
    const c = anthropic(sim);
    const ref = await c.messages.create(MSG);
    const stream = c.messages.stream(MSG);
    let text = '';
    stream.on('text', (t) => { text += t; });
    const fin = await stream.finalMessage();
    assert.equal(text, ref.content[0].text);
    assert.equal(fin.content[0].text, ref.content[0].text);
    assert.equal(fin.stop_reason, 'end_turn');
    assert.deepEqual(fin.usage, ref.usage);
    assert.match(fin.id, /^msg_sim_/);
  });

  test('raw stream: Anthropic event sequence, event lines, usage in message_start and message_delta', async () => {
    const ref = await anthropic(sim).messages.create(MSG);
    const n = ref.usage.output_tokens;
    const events = [];
    for await (const ev of await anthropic(sim).messages.create({ ...MSG, stream: true })) events.push(ev);
    assert.deepEqual(events.map((e) => e.type), [
      'message_start', 'content_block_start', ...Array(n).fill('content_block_delta'), 'content_block_stop', 'message_delta', 'message_stop',
    ]); // the SDK drops ping
    const start = events[0].message;
    assert.deepEqual(start.content, []);
    assert.equal(start.stop_reason, null);
    assert.deepEqual(start.usage, { input_tokens: 24, output_tokens: 1, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    assert.deepEqual(events[1], { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } });
    const text = events.slice(2, 2 + n).map((e) => {
      assert.equal(e.delta.type, 'text_delta');
      return e.delta.text;
    }).join('');
    assert.equal(text, ref.content[0].text);
    assert.deepEqual(events.at(-2), { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: n } });
    // on the wire: every event names itself, ping included
    const r = await post(sim, '/v1/messages', { ...MSG, stream: true });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), /text\/event-stream/);
    assert.match(r.headers.get('request-id'), /^req_sim_/);
    const wire = sseEvents(await r.text());
    assert.deepEqual(wire.slice(0, 3).map((e) => e.event), ['message_start', 'content_block_start', 'ping']);
    for (const e of wire) assert.equal(JSON.parse(e.data).type, e.event);
  });

  test('pacing: ttft before the first delta, then tokens_per_sec', async () => {
    const t0 = Date.now();
    const r = await post(paced, '/v1/messages', { ...MSG, stream: true, max_tokens: 11 });
    const reader = r.body.getReader();
    const arrivals = [];
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      const k = (Buffer.from(value).toString().match(/"text_delta"/g) ?? []).length;
      for (let i = 0; i < k; i++) arrivals.push(Date.now() - t0);
    }
    assert.equal(arrivals.length, 11);
    assert.ok(arrivals[0] >= 190, `first token after ${arrivals[0]} ms`);
    const spread = arrivals.at(-1) - arrivals[0];
    assert.ok(spread >= 170 && spread < lib.ms(600), `tokens spread over ${spread} ms`);
  });

  test('a client that leaves mid-stream is billed for what was sent', async () => {
    await paced.reset();
    const c = await lib.Raw.connect(paced.port);
    await c.write(lib.httpRequest('POST', '/v1/messages', {
      body: { ...MSG, model: 'left', stream: true, max_tokens: 60 },
      headers: { 'anthropic-version': '2023-06-01', 'X-Sim-Cached-Tokens': '4' },
    }));
    await c.wait((x) => (x.buf.toString().match(/"text_delta"/g) ?? []).length >= 3, { timeout: lib.ms(3000) });
    c.destroy();
    const m = await lib.until(async () => (await paced.stats()).models.left, { what: 'the aborted stream in the stats' });
    assert.equal(m.prompt_tokens, 24);
    assert.equal(m.cached_tokens, 4);
    assert.ok(m.completion_tokens >= 3 && m.completion_tokens < 60, `${m.completion_tokens} billed`);
  });
});

describe('tool calls', () => {
  const FORCED = { ...MSG, tools: TOOLS, tool_choice: { type: 'tool', name: 'get_weather' } };

  test('forced: one tool_use block with a deterministic input of the schema\'s properties', async () => {
    const c = anthropic(sim);
    const m = await c.messages.create(FORCED);
    assert.equal(m.stop_reason, 'tool_use');
    assert.equal(m.content.length, 1);
    const tu = m.content[0];
    assert.deepEqual(Object.keys(tu).sort(), ['id', 'input', 'name', 'type']);
    assert.equal(tu.type, 'tool_use');
    assert.match(tu.id, /^toolu_sim_[0-9a-f]{16}$/);
    assert.equal(tu.name, 'get_weather');
    assert.deepEqual(Object.keys(tu.input), ['city', 'unit']);
    for (const v of Object.values(tu.input)) assert.match(v, /^[a-z]+( [a-z]+){0,2}$/);
    assert.equal(m.usage.output_tokens, tokens(JSON.stringify(tu.input)));
    assert.equal(m.usage.input_tokens, PROMPT, 'tool definitions count 0');
    const again = await c.messages.create(FORCED);
    assert.deepEqual(again.content[0].input, tu.input);
    assert.notEqual(again.content[0].id, tu.id);
    // "any" calls the first tool; "auto" and no choice answer with text
    const any = await c.messages.create({ ...FORCED, tool_choice: { type: 'any' } });
    assert.deepEqual(any.content[0].input, tu.input);
    const time = await c.messages.create({ ...FORCED, tool_choice: { type: 'tool', name: 'get_time' } });
    assert.deepEqual(Object.keys(time.content[0].input), ['zone']);
    for (const choice of [{ type: 'auto' }, undefined]) {
      const t = await c.messages.create({ ...MSG, tools: TOOLS, tool_choice: choice });
      assert.equal(t.content[0].type, 'text');
      assert.equal(t.stop_reason, 'end_turn');
    }
    // a schema without properties: {}
    const bare = await c.messages.create({ ...MSG, tools: [{ name: 'ping', input_schema: { type: 'object' } }], tool_choice: { type: 'any' } });
    assert.deepEqual(bare.content[0].input, {});
    assert.equal(bare.usage.output_tokens, 2);
  });

  test('forced and streamed: the SDK accumulates the same input', async () => {
    const c = anthropic(sim);
    const ref = await c.messages.create(FORCED);
    const stream = c.messages.stream(FORCED);
    let json = '';
    stream.on('inputJson', (partial) => { json += partial; });
    const fin = await stream.finalMessage();
    assert.equal(fin.stop_reason, 'tool_use');
    assert.equal(fin.content[0].type, 'tool_use');
    assert.equal(fin.content[0].name, 'get_weather');
    assert.deepEqual(fin.content[0].input, ref.content[0].input);
    assert.deepEqual(JSON.parse(json), ref.content[0].input);
    assert.deepEqual(fin.usage, ref.usage);
    // raw: the block opens with an empty input, then input_json_delta pieces, one token each
    const events = [];
    for await (const ev of await c.messages.create({ ...FORCED, stream: true })) events.push(ev);
    const open = events[1].content_block;
    assert.deepEqual({ ...open, id: 'x' }, { type: 'tool_use', id: 'x', name: 'get_weather', input: {} });
    const deltas = events.filter((e) => e.type === 'content_block_delta');
    assert.equal(deltas.length, ref.usage.output_tokens);
    for (const d of deltas) {
      assert.equal(d.delta.type, 'input_json_delta');
      assert.equal(tokens(d.delta.partial_json), 1);
    }
    assert.deepEqual(JSON.parse(deltas.map((d) => d.delta.partial_json).join('')), ref.content[0].input);
    assert.equal(events.at(-2).delta.stop_reason, 'tool_use');
  });

  test('cut by max_tokens: stop_reason max_tokens, the complete properties only', async () => {
    const ref = await anthropic(sim).messages.create(FORCED);
    const full = JSON.stringify(ref.content[0].input);
    for (const limit of [1, 5, ref.usage.output_tokens - 1]) {
      const m = await anthropic(sim).messages.create({ ...FORCED, max_tokens: limit });
      assert.equal(m.stop_reason, 'max_tokens');
      assert.equal(m.usage.output_tokens, limit);
      const input = m.content[0].input;
      for (const [k, v] of Object.entries(input)) assert.equal(v, ref.content[0].input[k]);
      const text = JSON.stringify(input);
      assert.ok(tokens(text) <= limit + 1 || Object.keys(input).length === 0, text);
      assert.ok(full.startsWith(text.slice(0, -1)));
    }
  });

  test('the same forced call via chat completions: same arguments, same tokens', async () => {
    const a = await anthropic(sim).messages.create(FORCED);
    const o = await sim.client().chat.completions.create({ ...CHAT, tools: FUNCTIONS, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    const call = o.choices[0].message.tool_calls[0];
    assert.deepEqual(JSON.parse(call.function.arguments), a.content[0].input);
    assert.equal(o.usage.completion_tokens, a.usage.output_tokens);
    assert.equal(o.usage.prompt_tokens, a.usage.input_tokens);
    assert.equal(o.choices[0].finish_reason, 'tool_calls');
  });

  test('tool definitions and choices are validated as Anthropic does', async () => {
    const cases = [
      [{ tools: [{ input_schema: { type: 'object' } }] }, /tools\.0\.name: Field required/],
      [{ tools: [{ name: 'bad name', input_schema: { type: 'object' } }] }, /tools\.0\.name: String should match pattern/],
      [{ tools: [{ name: 'x' }] }, /tools\.0\.input_schema: Field required/],
      [{ tools: [{ name: 'x', input_schema: { type: 'array' } }] }, /tools\.0\.input_schema\.type: Input should be 'object'/],
      [{ tools: [{ name: 'x', input_schema: { type: 'object' } }, { name: 'x', input_schema: { type: 'object' } }] }, /Tool names must be unique/],
      [{ tools: 'x' }, /tools: Input should be a valid list/],
      [{ tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, /custom tools only/],
      [{ tools: TOOLS, tool_choice: { type: 'tool', name: 'nope' } }, /Tool 'nope' not found/],
      [{ tools: TOOLS, tool_choice: { type: 'tool' } }, /tool_choice\.name: Field required/],
      [{ tools: TOOLS, tool_choice: { type: 'sometimes' } }, /tool_choice\.type/],
      [{ tool_choice: { type: 'any' } }, /tool_choice may only be specified while providing tools/],
    ];
    for (const [extra, re] of cases) {
      const e = await sdkError(() => anthropic(sim).messages.create({ ...MSG, ...extra }), 400);
      assert.equal(e.type, 'invalid_request_error');
      assert.match(e.error.error.message, re, JSON.stringify(extra));
    }
  });
});

describe('cache tokens', () => {
  test('X-Sim-Cached-Tokens and X-Sim-Cache-Write-Tokens: read, then written from what is left', async () => {
    const c = anthropic(sim);
    const h = (read, write) => ({ headers: { 'X-Sim-Cached-Tokens': String(read), 'X-Sim-Cache-Write-Tokens': String(write) } });
    const u = async (read, write) => (await c.messages.create(MSG, h(read, write))).usage;
    assert.deepEqual(await u(5, 7), { input_tokens: PROMPT - 12, output_tokens: (await u(0, 0)).output_tokens, cache_creation_input_tokens: 7, cache_read_input_tokens: 5 });
    const capped = await u(1000, 1000);
    assert.equal(capped.cache_read_input_tokens, PROMPT);
    assert.equal(capped.cache_creation_input_tokens, 0);
    assert.equal(capped.input_tokens, 0);
    const writes = await u(3, 1000);
    assert.equal(writes.cache_creation_input_tokens, PROMPT - 3);
    assert.equal(writes.input_tokens, 0);
    // the stream reports them in message_start, and the SDK keeps them
    const fin = await c.messages.stream(MSG, h(2, 4)).finalMessage();
    assert.equal(fin.usage.cache_read_input_tokens, 2);
    assert.equal(fin.usage.cache_creation_input_tokens, 4);
    assert.equal(fin.usage.input_tokens, PROMPT - 6);
    // bad values, and the write header where OpenAI's usage has no place for it
    for (const [p, body, name, v, re] of [
      ['/v1/messages', MSG, 'X-Sim-Cache-Write-Tokens', 'lots', /not a whole number/],
      ['/v1/messages', MSG, 'X-Sim-Cached-Tokens', '-3', /not a whole number/],
      ['/v1/chat/completions', CHAT, 'X-Sim-Cache-Write-Tokens', '1', /\/v1\/messages only/],
    ]) {
      const r = await post(sim, p, body, { [name]: v });
      assert.equal(r.status, 400, `${p} ${name}: ${v}`);
      const b = await r.json();
      assert.match(p === '/v1/messages' ? assertAnthropicError(b, 'invalid_request_error').message : lib.assertErrorShape(b).message, re);
    }
  });
});

describe('errors', () => {
  test('the SDK raises 400 invalid_request_error naming the field', async () => {
    const { max_tokens: _unused, ...noMax } = MSG;
    const cases = [
      [noMax, /max_tokens: Field required/],
      [{ ...MSG, max_tokens: 0 }, /max_tokens: Input should be greater than or equal to 1/],
      [{ ...MSG, max_tokens: 'ten' }, /max_tokens: Input should be a valid integer/],
      [{ ...MSG, model: undefined }, /model: Field required/],
      [{ ...MSG, messages: [] }, /messages: at least one message is required/],
      [{ ...MSG, messages: [{ role: 'tool', content: 'x' }] }, /messages\.0\.role: Input should be 'user' or 'assistant'/],
      [{ ...MSG, messages: [{ role: 'user' }] }, /messages\.0\.content: Field required/],
      [{ ...MSG, messages: [{ role: 'user', content: '' }] }, /non-empty content/],
      [{ ...MSG, messages: [{ role: 'user', content: [{ type: 'hologram', data: 1 }] }] }, /messages\.0\.content\.0\.type: Input tag 'hologram'/],
      [{ ...MSG, messages: [{ role: 'user', content: [{ type: 'text' }] }] }, /messages\.0\.content\.0\.text: Field required/],
      [{ ...MSG, messages: [{ role: 'user', content: [{ type: 'image' }] }] }, /messages\.0\.content\.0\.source: Field required/],
      [{ ...MSG, messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'n' }] }] }, /content\.0\.input: Field required/],
      [{ ...MSG, messages: [{ role: 'user', content: [{ type: 'tool_result', content: 'x' }] }] }, /content\.0\.tool_use_id: Field required/],
      [{ ...MSG, system: [{ type: 'image' }] }, /system\.0\.type: Input should be 'text'/],
      [{ ...MSG, temperature: 1.5 }, /temperature: Input should be less than or equal to 1/],
      [{ ...MSG, top_k: -1 }, /top_k/],
      [{ ...MSG, stop_sequences: [1] }, /stop_sequences\.0/],
      [{ ...MSG, metadata: { user_id: 5 } }, /metadata\.user_id/],
      [{ ...MSG, stream: 'yes' }, /stream: Input should be a valid boolean/],
    ];
    for (const [body, re] of cases) {
      const e = await sdkError(() => anthropic(sim).messages.create(body), 400);
      assert.equal(e.type, 'invalid_request_error', JSON.stringify(body));
      assert.match(e.error.error.message, re, JSON.stringify(body));
      assert.match(e.requestID, /^req_sim_/);
    }
  });

  test('accepted: every block type, tool results, a prefilled assistant turn, unknown fields', async () => {
    const m = await anthropic(sim).messages.create({
      ...MSG,
      temperature: 0.5, top_p: 0.9, top_k: 5, stop_sequences: ['\n\nHuman:'], metadata: { user_id: 'u-1' },
      messages: [
        { role: 'user', content: [{ type: 'document', source: { type: 'text', media_type: 'text/plain', data: 'doc' } }, { type: 'text', text: 'Weather?' }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'get_weather', input: { city: 'Oslo' } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: 'Sunny' }] }] },
        { role: 'assistant', content: '' },
      ],
      tools: TOOLS,
    });
    assert.equal(m.stop_reason, 'end_turn');
    // user: Weather, ?; user: Sunny (the tool result's text); the empty final assistant turn
    assert.equal(m.usage.input_tokens, (3 + 1 + 3) + (3 + 1 + 2) + (3 + 1) + (3 + 1 + 1) + (3 + 1) + 3);
    const future = await post(sim, '/v1/messages', { ...MSG, service_tier: 'auto', thinking: { type: 'disabled' } });
    assert.equal(future.status, 200);
  });

  test('error shape on the wire; not JSON; 404 and 405 in Anthropic shape', async () => {
    const r = await post(sim, '/v1/messages', '{"model":');
    assert.equal(r.status, 400);
    assert.match(r.headers.get('request-id'), /^req_sim_/);
    const b = await r.json();
    assertAnthropicError(b, 'invalid_request_error');
    assert.equal(b.request_id, r.headers.get('request-id'));
    const nf = await post(sim, '/v1/messages/count_tokens', MSG);
    assert.equal(nf.status, 404);
    assertAnthropicError(await nf.json(), 'not_found_error');
    const get = await fetch(`${sim.url}/v1/messages`, { headers: { 'anthropic-version': '2023-06-01' } });
    assert.equal(get.status, 405);
    assert.equal(get.headers.get('allow'), 'POST');
    assertAnthropicError(await get.json(), 'invalid_request_error');
    // without anthropic-version an unknown path answers in OpenAI's shape
    const plain = await fetch(`${sim.url}/v1/nothing`, { method: 'POST' });
    lib.assertErrorShape(await plain.json());
    // and OpenAI's endpoints answer in OpenAI's shape whatever the headers
    const chat = await post(sim, '/v1/chat/completions', '{}');
    assert.equal(chat.status, 400);
    lib.assertErrorShape(await chat.json(), { type: 'invalid_request_error' });
  });

  test('anthropic-version is required (400), and must be a known version', async () => {
    await sim.reset();
    const r = await fetch(`${sim.url}/v1/messages`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(MSG) });
    assert.equal(r.status, 400);
    assert.match(assertAnthropicError(await r.json(), 'invalid_request_error').message, /anthropic-version: header is required/);
    const bad = await post(sim, '/v1/messages', MSG, { 'anthropic-version': '1999-01-01' });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).error.message, /1999-01-01/);
    const s = await sim.stats();
    assert.equal(s.requests, 2);
    assert.equal(s.rejected, 2);
    assert.deepEqual(s.models, {});
  });

  test('the required key comes in x-api-key; 401 authentication_error otherwise', async () => {
    await keyed.reset();
    const ok = await anthropic(keyed).messages.create(MSG);
    assert.equal(ok.type, 'message');
    const wrong = await sdkError(() => anthropic(keyed, { apiKey: 'sk-nope' }).messages.create(MSG), 401);
    assert.equal(wrong.type, 'authentication_error');
    assert.ok(wrong instanceof Anthropic.AuthenticationError);
    // Bearer is OpenAI's way: not enough for /v1/messages, still right for chat
    const bearer = await post(keyed, '/v1/messages', MSG, { Authorization: 'Bearer sk-ant-sim' });
    assert.equal(bearer.status, 401);
    assert.match(assertAnthropicError(await bearer.json(), 'authentication_error').message, /x-api-key/);
    const chat = await fetch(`${keyed.url}/v1/chat/completions`, { method: 'POST', headers: { Authorization: 'Bearer sk-ant-sim' }, body: JSON.stringify(CHAT) });
    assert.equal(chat.status, 200);
    const s = await keyed.stats();
    assert.equal(s.rejected, 2);
    assert.equal(s.models['sim-fast'].requests, 2);
  });
});

describe('faults', () => {
  test('429 with retry-after, 500 api_error, 503 as 529 overloaded_error: billed nothing', async () => {
    await sim.reset();
    const fault = (f) => ({ headers: { 'X-Sim-Fault': f } });
    const e429 = await sdkError(() => anthropic(sim).messages.create(MSG, fault('429')), 429);
    assert.ok(e429 instanceof Anthropic.RateLimitError);
    assert.equal(e429.type, 'rate_limit_error');
    assert.equal(e429.headers.get('retry-after'), '1');
    assert.match(e429.requestID, /^req_sim_/);
    const e500 = await sdkError(() => anthropic(sim).messages.create(MSG, fault('500')), 500);
    assert.equal(e500.type, 'api_error');
    const e529 = await sdkError(() => anthropic(sim).messages.create(MSG, fault('503')), 529);
    assert.equal(e529.type, 'overloaded_error');
    const streamed = await sdkError(() => anthropic(sim).messages.stream(MSG, fault('429')).finalMessage(), 429);
    assert.equal(streamed.type, 'rate_limit_error');
    const s = await sim.stats();
    assert.deepEqual(s.faults, { 429: 2, 500: 1, 503: 1, timeout: 0, reset: 0, cut: 0, malformed: 0 });
    assert.deepEqual(s.models['sim-fast'], { requests: 4, streams: 1, prompt_tokens: 0, completion_tokens: 0, cached_tokens: 0, cache_write_tokens: 0 });
  });

  test('fault rules apply to /v1/messages', async () => {
    const e = await sdkError(() => anthropic(ruled).messages.create(MSG), 429);
    assert.equal(e.type, 'rate_limit_error');
    assert.equal((await anthropic(ruled).messages.create(MSG, { headers: { 'X-Sim-Fault': 'none' } })).type, 'message');
  });

  test('cut: half the deltas and no message_stop, billed for what was sent; malformed', async () => {
    await sim.reset();
    const c = await lib.Raw.connect(sim.port);
    await c.write(lib.httpRequest('POST', '/v1/messages', {
      body: { ...MSG, max_tokens: 40, stream: true },
      headers: { 'anthropic-version': '2023-06-01', 'X-Sim-Fault': 'cut', 'X-Sim-Cache-Write-Tokens': '5' },
    }));
    await c.closed({ timeout: lib.ms(5000) });
    const text = c.buf.toString();
    assert.ok(!text.includes('message_stop'));
    assert.equal((text.match(/"text_delta"/g) ?? []).length, 20);
    const s = await sim.stats();
    assert.deepEqual(s.models['sim-fast'], { requests: 1, streams: 1, prompt_tokens: PROMPT, completion_tokens: 20, cached_tokens: 0, cache_write_tokens: 5 });
    // malformed: a JSON prefix buffered; a stream event that is not JSON, then message_stop
    const m = await post(sim, '/v1/messages', MSG, { 'X-Sim-Fault': 'malformed' });
    assert.equal(m.status, 200);
    const body = await m.text();
    assert.ok(body.startsWith('{"id":"msg_sim_'));
    assert.throws(() => JSON.parse(body));
    const ms = await post(sim, '/v1/messages', { ...MSG, stream: true }, { 'X-Sim-Fault': 'malformed' });
    const ev = sseEvents(await ms.text());
    assert.deepEqual(ev.slice(0, 3).map((e) => e.event), ['message_start', 'content_block_start', 'ping']);
    assert.throws(() => JSON.parse(ev[3].data));
    assert.equal(ev.at(-1).event, 'message_stop');
  });
});

describe('stats', () => {
  test('/sim/stats and /sim/requests match what the SDK received', async () => {
    await sim.reset();
    const c = anthropic(sim);
    const calls = [
      ['a-1', MSG, {}, false],
      ['a-2', { ...MSG, max_tokens: 7 }, { 'X-Sim-Cached-Tokens': '10' }, true],
      ['a-3', { ...MSG, tools: TOOLS, tool_choice: { type: 'any' } }, { 'X-Sim-Cached-Tokens': '2', 'X-Sim-Cache-Write-Tokens': '8' }, false],
      ['a-4', { ...MSG, tools: TOOLS, tool_choice: { type: 'any' } }, { 'X-Sim-Cache-Write-Tokens': '1000' }, true],
    ];
    const usage = new Map();
    for (const [id, body, headers, stream] of calls) {
      const opts = { headers: { ...headers, 'X-Request-Id': id } };
      const m = stream ? await c.messages.stream(body, opts).finalMessage() : await c.messages.create(body, opts);
      usage.set(id, m.usage);
    }
    const chat = await sim.client().chat.completions.create(CHAT, { headers: { 'X-Request-Id': 'o-1', 'X-Sim-Cached-Tokens': '3' } });
    const served = (await (await fetch(`${sim.url}/sim/requests`)).json()).requests;
    assert.deepEqual(served.map((r) => r.id), ['a-1', 'a-2', 'a-3', 'a-4', 'o-1']);
    const sum = { prompt: 0, completion: 0, cached: 0, write: 0 };
    for (const [i, [id, , , stream]] of calls.entries()) {
      const u = usage.get(id);
      const all = u.input_tokens + u.cache_read_input_tokens + u.cache_creation_input_tokens;
      assert.deepEqual(served[i], {
        id, model: 'sim-fast', dialect: 'anthropic', stream, fault: 'none',
        prompt_tokens: all, completion_tokens: u.output_tokens,
        cached_tokens: u.cache_read_input_tokens, cache_write_tokens: u.cache_creation_input_tokens,
      });
      sum.prompt += all;
      sum.completion += u.output_tokens;
      sum.cached += u.cache_read_input_tokens;
      sum.write += u.cache_creation_input_tokens;
    }
    assert.deepEqual(served[4], {
      id: 'o-1', model: 'sim-fast', dialect: 'openai', stream: false, fault: 'none',
      prompt_tokens: chat.usage.prompt_tokens, completion_tokens: chat.usage.completion_tokens, cached_tokens: 3, cache_write_tokens: 0,
    });
    const s = await sim.stats();
    assert.deepEqual(s.models['sim-fast'], {
      requests: 5, streams: 2,
      prompt_tokens: sum.prompt + chat.usage.prompt_tokens,
      completion_tokens: sum.completion + chat.usage.completion_tokens,
      cached_tokens: sum.cached + 3, cache_write_tokens: sum.write,
    });
    assert.equal(sum.prompt, 4 * PROMPT);
    assert.equal(sum.write, 8 + PROMPT);
  });
});
