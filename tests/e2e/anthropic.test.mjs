// The Anthropic dialect through the gateway (docs/anthropic.md): the
// official @anthropic-ai/sdk against /v1/messages, served by an
// Anthropic-dialect offering (passed as is) and by an OpenAI-compatible one
// (translated both ways); the official openai SDK reaching an
// Anthropic-dialect offering; streams, tools and their results, images,
// errors in the caller's dialect, and usage (cache reads and writes counted
// once) in the ledger equal to what the sim billed. One sim serves both
// dialects, and gives the same conversation the same text either way, so
// every translated answer is compared with a direct call.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import * as lib from './lib.mjs';

const KEY = 'sk-e2e-anthropic';
const FWD = ['X-Sim-Fault', 'X-Sim-Cached-Tokens', 'X-Sim-Cache-Write-Tokens'];
let sim, gw, ant, oai, direct, directOai;

before(async () => {
  sim = await lib.startSim({ seed: 11 });
  gw = await lib.startGateway({
    providers: [
      { ...lib.simProvider('anth', sim), dialect: 'anthropic', forward_headers: FWD },
      { ...lib.simProvider('oai', sim), forward_headers: FWD },
    ],
    offerings: [
      { id: 'anth/claude', provider: 'anth', model: 'claude-sim', price: { input: '3.00', output: '15.00',
                                                                           cached_input: '0.30', cache_write: '3.75' } },
      { id: 'oai/gpt', provider: 'oai', model: 'gpt-sim', price: { input: '0.15', output: '0.60', cached_input: '0.075' } },
    ],
    models: [
      { name: 'claude', offerings: ['anth/claude'] },
      { name: 'gpt', offerings: ['oai/gpt'] },
    ],
    routing: { attempts: 1 },
    keys: lib.keyEntries({ a: KEY }),
  });
  ant = new Anthropic({ baseURL: gw.url, apiKey: KEY, maxRetries: 0 });
  oai = gw.client(KEY);
  direct = new Anthropic({ baseURL: sim.url, apiKey: 'none', maxRetries: 0 });
  directOai = sim.client();
});
after(lib.stopAll);

const CONVO = {
  max_tokens: 200,
  system: 'Be brief.',
  messages: [
    { role: 'user', content: 'What is a tollgate?' },
    { role: 'assistant', content: 'A gate where a toll is paid.' },
    { role: 'user', content: 'And why would software need one?' },
  ],
};
const asChat = (c) => [{ role: 'system', content: c.system }, ...c.messages];
const text = (msg) => msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');

const WEATHER = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
const OAI_WEATHER = { type: 'function', function: { name: WEATHER.name, description: WEATHER.description,
                                                    parameters: WEATHER.input_schema } };

async function recordOf(rid) {
  return lib.until(() => gw.usage().find((r) => r.rid === rid), { what: `the record of ${rid}` });
}

function servedOf(requests, rid) {
  return requests.find((r) => r.id === rid);
}

async function simRequests() {
  const r = await fetch(`${sim.url}/sim/requests`);
  return (await r.json()).requests;
}

describe('Anthropic client, Anthropic offering (as is)', () => {
  test('a message equals the provider\'s own, and the ledger bills its usage', async () => {
    const res = await ant.messages.create({ model: 'claude', ...CONVO });
    const ref = await direct.messages.create({ model: 'claude-sim', ...CONVO });
    assert.equal(res.type, 'message');
    assert.equal(text(res), text(ref));
    assert.deepEqual(res.usage, ref.usage);
    assert.equal(res.stop_reason, 'end_turn');
  });

  test('a stream through the SDK\'s MessageStream gives the same message', async () => {
    const stream = ant.messages.stream({ model: 'claude', ...CONVO });
    const msg = await stream.finalMessage();
    const ref = await direct.messages.create({ model: 'claude-sim', ...CONVO });
    assert.equal(text(msg), text(ref));
    assert.equal(msg.usage.output_tokens, ref.usage.output_tokens);
    assert.equal(msg.usage.input_tokens, ref.usage.input_tokens);
  });

  test('cache reads and writes are counted once, priced each at its rate', async () => {
    const rid = 'req-anth-cache';
    const res = await ant.messages.create({ model: 'claude', ...CONVO }, {
      headers: { 'X-Request-Id': rid, 'X-Sim-Cached-Tokens': '5', 'X-Sim-Cache-Write-Tokens': '3' } });
    assert.equal(res.usage.cache_read_input_tokens, 5);
    assert.equal(res.usage.cache_creation_input_tokens, 3);
    const rec = await recordOf(rid);
    const served = servedOf(await simRequests(), rid);
    const prompt = res.usage.input_tokens + 5 + 3;
    assert.equal(rec.prompt_tokens, prompt);
    assert.equal(served.prompt_tokens, prompt);
    assert.equal(served.cached_tokens, 5);
    assert.equal(served.cache_write_tokens, 3);
    assert.equal(served.dialect, 'anthropic');
    assert.equal(rec.cached_tokens, 5);
    assert.equal(rec.cache_write_tokens, 3);
    assert.equal(rec.completion_tokens, res.usage.output_tokens);
    // $3/M input, $0.30/M reads, $3.75/M writes, $15/M output, in nanos
    const cost = res.usage.input_tokens * 3000 + 5 * 300 + 3 * 3750 + res.usage.output_tokens * 15000;
    assert.equal(rec.cost, (cost / 1e9).toFixed(9));
  });

  test('attribution tags in metadata are read, and only user_id reaches Anthropic', async () => {
    const rid = 'req-anth-metadata';
    const res = await ant.messages.create(
      { model: 'claude', ...CONVO, metadata: { user_id: 'u-42', feature: 'summarize', workspace: 'ws-1' } },
      { headers: { 'X-Request-Id': rid } });
    assert.equal(res.type, 'message');
    const rec = await recordOf(rid);
    assert.equal(rec.feature, 'summarize');
    assert.equal(rec.workspace, 'ws-1');
    // the sim, as Anthropic, refuses other metadata keys: sent directly, it says so
    const direct400 = await direct.messages.create({ model: 'claude-sim', ...CONVO, metadata: { feature: 'x' } })
      .catch((e) => e);
    assert.ok(direct400 instanceof Anthropic.BadRequestError);
  });

  test('forced tool calls, buffered and streamed', async () => {
    const body = { model: 'claude', max_tokens: 100, tools: [WEATHER],
                   tool_choice: { type: 'tool', name: 'get_weather' },
                   messages: [{ role: 'user', content: 'Weather in Paris?' }] };
    const res = await ant.messages.create(body);
    assert.equal(res.stop_reason, 'tool_use');
    const call = res.content.find((b) => b.type === 'tool_use');
    assert.equal(call.name, 'get_weather');
    assert.equal(typeof call.input.city, 'string');
    const msg = await ant.messages.stream(body).finalMessage();
    assert.deepEqual(msg.content.find((b) => b.type === 'tool_use').input, call.input);
  });
});

describe('Anthropic client, OpenAI-compatible offering (translated)', () => {
  test('a message: the same text as the provider gives in its own dialect; usage translated', async () => {
    const rid = 'req-anth-to-oai';
    const res = await ant.messages.create({ model: 'gpt', ...CONVO }, { headers: { 'X-Request-Id': rid } });
    const ref = await directOai.chat.completions.create({ model: 'gpt-sim', messages: asChat(CONVO), max_tokens: 200 });
    assert.equal(res.type, 'message');
    assert.equal(res.role, 'assistant');
    assert.equal(res.model, 'gpt');
    assert.equal(text(res), ref.choices[0].message.content);
    assert.equal(res.stop_reason, 'end_turn');
    assert.equal(res.usage.input_tokens, ref.usage.prompt_tokens);
    assert.equal(res.usage.output_tokens, ref.usage.completion_tokens);
    const rec = await recordOf(rid);
    assert.equal(rec.model, 'gpt');
    assert.equal(rec.offering, 'oai/gpt');
    assert.equal(rec.prompt_tokens, ref.usage.prompt_tokens);
    assert.equal(rec.completion_tokens, ref.usage.completion_tokens);
  });

  test('a stream: MessageStream assembles the translated events', async () => {
    const stream = ant.messages.stream({ model: 'gpt', ...CONVO });
    let deltas = '';
    stream.on('text', (t) => { deltas += t; });
    const msg = await stream.finalMessage();
    const ref = await directOai.chat.completions.create({ model: 'gpt-sim', messages: asChat(CONVO), max_tokens: 200 });
    assert.equal(text(msg), ref.choices[0].message.content);
    assert.equal(deltas, text(msg));
    assert.equal(msg.stop_reason, 'end_turn');
    assert.equal(msg.usage.output_tokens, ref.usage.completion_tokens);
    assert.equal(msg.usage.input_tokens, ref.usage.prompt_tokens);
  });

  test('max_tokens reached: stop_reason max_tokens', async () => {
    const res = await ant.messages.create({ model: 'gpt', ...CONVO, max_tokens: 3 });
    assert.equal(res.stop_reason, 'max_tokens');
    assert.equal(res.usage.output_tokens, 3);
  });

  test('tools: a forced call becomes tool_use; its result goes back as a tool message', async () => {
    const body = { model: 'gpt', max_tokens: 100, tools: [WEATHER], tool_choice: { type: 'tool', name: 'get_weather' },
                   messages: [{ role: 'user', content: 'Weather in Paris?' }] };
    const res = await ant.messages.create(body);
    assert.equal(res.stop_reason, 'tool_use');
    const call = res.content.find((b) => b.type === 'tool_use');
    assert.equal(call.name, 'get_weather');
    assert.equal(typeof call.input.city, 'string');
    const streamed = await ant.messages.stream(body).finalMessage();
    assert.deepEqual(streamed.content.find((b) => b.type === 'tool_use').input, call.input);
    // the conversation goes on with the tool's result
    const next = await ant.messages.create({
      model: 'gpt', max_tokens: 500, tools: [WEATHER],
      messages: [
        body.messages[0],
        { role: 'assistant', content: res.content },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'Sunny, 21 C' }] },
      ],
    });
    assert.equal(next.stop_reason, 'end_turn');
    assert.ok(text(next).length > 0);
  });

  test('what the other dialect cannot carry is refused in Anthropic\'s shape, naming the field', async () => {
    const e = await ant.messages.create({ model: 'gpt', ...CONVO, top_k: 5 }).catch((err) => err);
    assert.ok(e instanceof Anthropic.BadRequestError, String(e));
    assert.equal(e.error.type, 'error');
    assert.equal(e.error.error.type, 'invalid_request_error');
    assert.match(e.error.error.message, /top_k/);
  });
});

describe('OpenAI client, Anthropic offering (translated)', () => {
  test('a chat completion: the same text as the provider gives in its own dialect', async () => {
    const rid = 'req-oai-to-anth';
    const res = await oai.chat.completions.create({ model: 'claude', messages: asChat(CONVO), max_tokens: 200 },
                                                  { headers: { 'X-Request-Id': rid } });
    const ref = await direct.messages.create({ model: 'claude-sim', ...CONVO });
    assert.equal(res.object, 'chat.completion');
    assert.equal(res.model, 'claude');
    assert.equal(res.choices[0].message.content, text(ref));
    assert.equal(res.choices[0].finish_reason, 'stop');
    assert.equal(res.usage.prompt_tokens, ref.usage.input_tokens);
    assert.equal(res.usage.completion_tokens, ref.usage.output_tokens);
    const rec = await recordOf(rid);
    assert.equal(rec.offering, 'anth/claude');
    assert.equal(rec.completion_tokens, ref.usage.output_tokens);
  });

  test('a stream, with the usage chunk asked for', async () => {
    const stream = await oai.chat.completions.create({ model: 'claude', messages: asChat(CONVO), max_tokens: 200,
                                                        stream: true, stream_options: { include_usage: true } });
    let out = '';
    let usage = null;
    let finish = null;
    for await (const c of stream) {
      out += c.choices[0]?.delta?.content ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      if (c.usage) usage = c.usage;
    }
    const ref = await direct.messages.create({ model: 'claude-sim', ...CONVO });
    assert.equal(out, text(ref));
    assert.equal(finish, 'stop');
    assert.equal(usage.completion_tokens, ref.usage.output_tokens);
  });

  test('tools: a forced function call, buffered and streamed with the SDK\'s helper', async () => {
    const body = { model: 'claude', max_tokens: 100, tools: [OAI_WEATHER],
                   tool_choice: { type: 'function', function: { name: 'get_weather' } },
                   messages: [{ role: 'user', content: 'Weather in Paris?' }] };
    const res = await oai.chat.completions.create(body);
    assert.equal(res.choices[0].finish_reason, 'tool_calls');
    const call = res.choices[0].message.tool_calls[0];
    assert.equal(call.function.name, 'get_weather');
    const args = JSON.parse(call.function.arguments);
    assert.equal(typeof args.city, 'string');
    const final = await oai.chat.completions.stream(body).finalChatCompletion();
    assert.deepEqual(JSON.parse(final.choices[0].message.tool_calls[0].function.arguments), args);
    const next = await oai.chat.completions.create({
      model: 'claude', max_tokens: 500, tools: [OAI_WEATHER],
      messages: [body.messages[0], res.choices[0].message,
                 { role: 'tool', tool_call_id: call.id, content: 'Sunny, 21 C' }],
    });
    assert.equal(next.choices[0].finish_reason, 'stop');
  });

  test('what Claude cannot honour is refused in OpenAI\'s shape', async () => {
    const e = await oai.chat.completions.create({ model: 'claude', messages: asChat(CONVO), n: 2 }).catch((err) => err);
    assert.ok(e instanceof OpenAI.BadRequestError, String(e));
    assert.equal(e.param, 'n');
    assert.match(e.message, /n/);
    const emb = await oai.embeddings.create({ model: 'claude', input: 'x' }).catch((err) => err);
    assert.ok(emb instanceof OpenAI.BadRequestError, String(emb));
    assert.match(emb.message, /Anthropic provider/);
  });
});

describe('images, where both sides take them', () => {
  const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
  test('an Anthropic image block reaches an OpenAI-compatible offering as a data URL, and back', async () => {
    const rid = 'req-anth-image';
    const content = [{ type: 'text', text: 'What is in this picture?' },
                     { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }];
    const res = await ant.messages.create({ model: 'gpt', max_tokens: 100, messages: [{ role: 'user', content }] },
                                          { headers: { 'X-Request-Id': rid } });
    // the sim answers the text of a conversation; an image part is content it accepts
    const ref = await directOai.chat.completions.create({ model: 'gpt-sim', max_tokens: 100, messages: [{
      role: 'user', content: [{ type: 'text', text: 'What is in this picture?' },
                             { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] });
    assert.equal(text(res), ref.choices[0].message.content);
    const oa = await oai.chat.completions.create({ model: 'claude', max_tokens: 100, messages: [{
      role: 'user', content: [{ type: 'text', text: 'What is in this picture?' },
                             { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] }] });
    const refA = await direct.messages.create({ model: 'claude-sim', max_tokens: 100, messages: [{ role: 'user', content }] });
    assert.equal(oa.choices[0].message.content, text(refA));
  });
});

describe('errors in the caller\'s dialect', () => {
  test('the gateway\'s own refusals', async () => {
    const missing = await ant.messages.create({ model: 'claude', messages: CONVO.messages }).catch((e) => e);
    assert.ok(missing instanceof Anthropic.BadRequestError);
    assert.equal(missing.error.error.type, 'invalid_request_error');
    assert.match(missing.error.error.message, /max_tokens/);
    const unknown = await ant.messages.create({ model: 'nope', ...CONVO }).catch((e) => e);
    assert.ok(unknown instanceof Anthropic.NotFoundError);
    assert.equal(unknown.error.error.type, 'not_found_error');
    const bad = new Anthropic({ baseURL: gw.url, apiKey: 'sk-wrong', maxRetries: 0 });
    const auth = await bad.messages.create({ model: 'claude', ...CONVO }).catch((e) => e);
    assert.ok(auth instanceof Anthropic.AuthenticationError);
    assert.equal(auth.error.error.type, 'authentication_error');
  });

  test('a provider failure, either way across', async () => {
    for (const model of ['claude', 'gpt']) {
      const e = await ant.messages.create({ model, ...CONVO }, { headers: { 'X-Sim-Fault': '500' } }).catch((err) => err);
      assert.equal(e.status, 502, `${model}: ${e}`);
      assert.equal(e.error.type, 'error');
      assert.equal(e.error.error.type, 'api_error');
      const r = await ant.messages.create({ model, ...CONVO }, { headers: { 'X-Sim-Fault': '429' } }).catch((err) => err);
      assert.ok(r instanceof Anthropic.RateLimitError, `${model}: ${r}`);
      assert.equal(r.error.error.type, 'rate_limit_error');
    }
    const o = await oai.chat.completions.create({ model: 'claude', messages: asChat(CONVO) },
                                                { headers: { 'X-Sim-Fault': '500' } }).catch((err) => err);
    assert.equal(o.status, 502);
    assert.equal(o.type, 'upstream_error');
  });
});

describe('the ledger against the sim', () => {
  test('tokens in the ledger equal what the sim billed, per offering, cached tokens once', async () => {
    // the gateway's calls carry its request id; the tests' direct reference calls none
    const served = (await simRequests()).filter((r) => r.id !== '');
    const billed = served.filter((r) => r.prompt_tokens > 0).length;
    const recs = await lib.until(() => {
      const r = gw.usage().filter((x) => x.prompt_tokens > 0);
      return r.length >= billed ? r : null;
    }, { what: `${billed} billed records in the ledger` });
    assert.equal(recs.length, billed);
    const sum = (rows, k) => rows.reduce((a, r) => a + r[k], 0);
    for (const [off, model] of [['anth/claude', 'claude-sim'], ['oai/gpt', 'gpt-sim']]) {
      const mine = recs.filter((r) => r.offering === off);
      const sims = served.filter((r) => r.model === model);
      assert.ok(mine.length > 5, `${off}: ${mine.length} records`);
      for (const k of ['prompt_tokens', 'completion_tokens', 'cached_tokens', 'cache_write_tokens'])
        assert.equal(sum(mine, k), sum(sims, k), `${off} ${k}`);
    }
  });
});
