// Shared helpers of the end-to-end tests: start the real `tollgate sim` and
// `tollgate serve` on 127.0.0.1 port 0 with a generated configuration,
// capture their output, talk to them (the official openai SDK, fetch, raw
// sockets), and stop them by PID.
//
// Every process started here is tracked; a test file calls
// `after(stopAll)`, which stops them all (SIGTERM, then SIGKILL after a
// deadline) and fails if one did not exit 0 or printed a sanitizer report.
// Nothing here sleeps and hopes: every wait polls with a deadline, scaled up
// for the ASan build (TOLLGATE_TIMEOUT_SCALE, or 3 when the binary's path
// says "asan").

import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const here = path.dirname(fileURLToPath(import.meta.url));

export const BIN = path.resolve(process.env.TOLLGATE_BIN || path.join(here, '../../build/tollgate'));
export const SCALE =
  Number(process.env.TOLLGATE_TIMEOUT_SCALE) || (/asan/i.test(BIN) ? 3 : 1);

/** A duration in ms, scaled for slow (sanitizer) builds. */
export const ms = (n) => Math.round(n * SCALE);

export const sha256 = (s) => createHash('sha256').update(s).digest('hex');

export const sleep = (n) => new Promise((res) => setTimeout(res, n));

/** Polls fn() until it returns a truthy value; throws after timeoutMs. */
export async function until(fn, { timeout = ms(5000), interval = 25, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeout} ms waiting for ${what} (last: ${fmt(last)})`);
    await sleep(interval);
  }
}

function fmt(v) {
  if (v instanceof Error) return v.message;
  try {
    return JSON.stringify(v)?.slice(0, 300);
  } catch {
    return String(v);
  }
}

/** p's value, or null when it takes longer than timeout ms (the timer is
 * cleared either way, so it never keeps the test process alive). */
export function orNull(p, timeout) {
  let t;
  const timer = new Promise((res) => {
    t = setTimeout(() => res(null), timeout);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

/** Rejects with a clear message when p takes longer than timeout ms. */
export function within(p, timeout, what = 'operation') {
  let t;
  const timer = new Promise((_, rej) => {
    t = setTimeout(() => rej(new Error(`${what} did not finish within ${timeout} ms`)), timeout);
  });
  return Promise.race([p, timer]).finally(() => clearTimeout(t));
}

// ---- processes -----------------------------------------------------------

const SANITIZER = /ERROR: AddressSanitizer|runtime error:|LeakSanitizer|ERROR: UndefinedBehaviorSanitizer/;
const live = [];

/** The environment of every child: sanitizers report leaks and fail hard. */
export function childEnv(extra = {}) {
  return {
    ...process.env,
    ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0',
    UBSAN_OPTIONS: 'print_stacktrace=1:halt_on_error=1',
    ...extra,
  };
}

export class Proc {
  /** shell: a sh command run first, in the process that then execs the
   * binary (same pid), e.g. `trap '' XFSZ` for a disposition to inherit. */
  constructor(name, args, { env = {}, expectCode = 0, shell } = {}) {
    this.name = name;
    this.args = args;
    this.expectCode = expectCode; // the exit code assertClean wants
    this.lines = []; // {stream, text, t}
    this.waiters = new Set();
    this.exit = null; // {code, signal}
    const [file, argv] = shell ? ['/bin/sh', ['-c', `${shell}; exec "$0" "$@"`, BIN, ...args]] : [BIN, args];
    this.child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: childEnv(env) });
    this.pid = this.child.pid;
    this.exited = new Promise((res) => {
      this.child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        res(this.exit);
      });
    });
    // 'close' comes after both pipes ended: every line has been read
    this.closed = new Promise((res) => this.child.on('close', () => res()));
    this.child.on('error', (e) => this.add('spawn', `spawn error: ${e.message}`));
    for (const stream of ['stdout', 'stderr']) {
      let rest = '';
      this.child[stream].setEncoding('utf8');
      this.child[stream].on('data', (d) => {
        rest += d;
        let i;
        while ((i = rest.indexOf('\n')) >= 0) {
          this.add(stream, rest.slice(0, i));
          rest = rest.slice(i + 1);
        }
      });
      this.child[stream].on('end', () => rest && this.add(stream, rest));
    }
    live.push(this);
  }

  add(stream, text) {
    this.lines.push({ stream, text, t: Date.now() });
    for (const w of this.waiters) w();
  }

  get running() {
    return this.exit === null;
  }

  /** Every output line, stdout and stderr, as text. */
  text() {
    return this.lines.map((l) => l.text);
  }

  /** Output lines parsed as JSON (the JSON log lines); others skipped. */
  json() {
    const out = [];
    for (const l of this.lines) {
      if (!l.text.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l.text));
      } catch {
        /* not a log line */
      }
    }
    return out;
  }

  /** The access log: one line per request. */
  requests() {
    return this.json().filter((l) => l.msg === 'request');
  }

  /** Waits for a line matching re (from line index `from`); its match. */
  waitLine(re, { timeout = ms(5000), from = 0 } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = from; i < this.lines.length; i++) {
          const m = this.lines[i].text.match(re);
          if (m) return done(null, m);
        }
        if (!this.running && this.exit)
          return done(new Error(`${this.name} exited (${fmt(this.exit)}) before printing ${re}:\n` +
                                this.tail()));
      };
      const timer = setTimeout(
        () => done(new Error(`${this.name}: no line matching ${re} within ${timeout} ms:\n` + this.tail())),
        timeout,
      );
      const done = (err, m) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        err ? reject(err) : resolve(m);
      };
      this.waiters.add(check);
      this.exited.then(check);
      check();
    });
  }

  tail(n = 20) {
    return this.lines.slice(-n).map((l) => `  [${l.stream}] ${l.text}`).join('\n');
  }

  signal(sig) {
    if (this.running) process.kill(this.pid, sig);
  }

  /** SIGTERM, then SIGKILL if it has not exited within timeout. */
  async stop({ timeout = ms(15000) } = {}) {
    if (this.running) {
      try {
        process.kill(this.pid, 'SIGTERM');
      } catch {
        /* already gone */
      }
      const t = await orNull(this.exited, timeout);
      if (!t && this.running) {
        this.killedHard = true;
        try {
          process.kill(this.pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
        await this.exited;
      }
    }
    await orNull(this.closed, ms(2000));
    return this.exit;
  }

  sanitizerReport() {
    return this.lines.filter((l) => SANITIZER.test(l.text)).map((l) => l.text);
  }

  /** Asserts a clean end: the expected exit code (0), no sanitizer report. */
  assertClean() {
    const report = this.sanitizerReport();
    assert.deepEqual(report, [], `${this.name} printed a sanitizer report:\n${this.tail(60)}`);
    assert.ok(!this.killedHard, `${this.name} did not exit after SIGTERM and was killed:\n${this.tail()}`);
    assert.deepEqual(this.exit, { code: this.expectCode, signal: null },
      `${this.name} (${this.args.join(' ')}) exited ${fmt(this.exit)}:\n${this.tail()}`);
  }
}

/** Stops every process started by this file (the last started first) and
 * fails if one did not end cleanly. For after() hooks. */
export async function stopAll() {
  const procs = live.splice(0).reverse();
  await Promise.all(procs.map((p) => p.stop()));
  const problems = [];
  for (const p of procs) {
    try {
      p.assertClean();
    } catch (e) {
      problems.push(e.message);
    }
  }
  for (const d of tmpdirs.splice(0)) rmSync(d, { recursive: true, force: true });
  if (problems.length) throw new Error(problems.join('\n\n'));
}

// A test runner that dies must not leave servers behind.
process.on('exit', () => {
  for (const p of live) if (p.running) try { process.kill(p.pid, 'SIGKILL'); } catch { /* gone */ }
});

/** Runs the binary to completion (CLI tests). */
export function run(args, { env = {}, timeout = ms(10000) } = {}) {
  // maxBuffer: spawnSync kills a child whose output passes it (1 MiB by
  // default), and `usage --format json` of a few thousand records does
  const r = spawnSync(BIN, args, { env: childEnv(env), encoding: 'utf8', timeout, maxBuffer: 256 << 20 });
  return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

const LISTEN_RE = /listening on 127\.0\.0\.1:(\d+)/;

// ---- the simulated provider ---------------------------------------------

export class Sim {
  constructor(proc, port, key) {
    this.proc = proc;
    this.port = port;
    this.key = key;
    this.url = `http://127.0.0.1:${port}`;
    this.baseURL = `${this.url}/v1`;
  }

  async stats() {
    const r = await fetch(`${this.url}/sim/stats`);
    assert.equal(r.status, 200);
    return r.json();
  }

  /** One model's counters (zeros when the sim has not seen it). */
  async model(name) {
    const s = await this.stats();
    return s.models[name] ?? { requests: 0, streams: 0, prompt_tokens: 0, completion_tokens: 0 };
  }

  async reset() {
    const r = await fetch(`${this.url}/sim/stats/reset`, { method: 'POST' });
    assert.equal(r.status, 200);
  }

  /** An SDK client talking to the sim directly. */
  client(opts = {}) {
    return new OpenAI({ baseURL: this.baseURL, apiKey: this.key ?? 'none', maxRetries: 0, ...opts });
  }
}

/**
 * Starts `tollgate sim` on a free port.
 * opts: seed, ttftMs, tps (tokens per second), faults ['500:10'], keyEnv
 * (name of the variable holding the key the sim demands), env, and conf: a
 * sim: section of a config file, for what has no flag (completion_tokens,
 * embedding_dims, retry_after_s).
 */
export async function startSim({ seed = 7, ttftMs = 0, tps = 0, faults = [], keyEnv, env = {}, conf } = {}) {
  const args = ['sim'];
  if (conf) {
    // settings only a config file can give (completion_tokens, ...);
    // the flags after it override the rest
    const file = path.join(tempDir(), 'sim.yaml');
    writeFileSync(file, toYaml({ sim: conf }));
    args.push('--config', file);
  }
  args.push('--listen', '127.0.0.1:0', '--seed', String(seed), '--ttft-ms', String(ttftMs),
            '--tokens-per-second', String(tps));
  for (const f of faults) args.push('--fault', f);
  if (keyEnv) args.push('--require-key-env', keyEnv);
  const proc = new Proc('sim', args, { env });
  const m = await proc.waitLine(LISTEN_RE, { timeout: ms(5000) });
  return new Sim(proc, Number(m[1]), keyEnv ? env[keyEnv] : undefined);
}

// ---- configuration ---------------------------------------------------------

const tmpdirs = [];

export function tempDir() {
  const d = mkdtempSync(path.join(tmpdir(), 'tollgate-e2e-'));
  tmpdirs.push(d);
  return d;
}

function scalar(v) {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(String(v)); // a JSON string is a YAML double-quoted scalar
}

function emit(obj, indent, out) {
  const pad = ' '.repeat(indent);
  for (const [k, v] of Object.entries(obj)) {
    if (v === undefined) continue;
    if (Array.isArray(v)) {
      if (v.some((item) => item !== null && typeof item === 'object')) {
        out.push(`${pad}${k}:`);
        for (const item of v) {
          if (item === null || typeof item !== 'object') {
            out.push(`${pad}  - ${scalar(item)}`);
            continue;
          }
          const sub = [];
          emit(item, indent + 4, sub);
          sub[0] = `${pad}  - ${sub[0].trimStart()}`;
          out.push(...sub);
        }
      } else {
        out.push(`${pad}${k}: [${v.map(scalar).join(', ')}]`);
      }
    } else if (v !== null && typeof v === 'object') {
      out.push(`${pad}${k}:`);
      emit(v, indent + 2, out);
    } else {
      out.push(`${pad}${k}: ${scalar(v)}`);
    }
  }
}

/** A configuration object as YAML text (block style, one field a line). */
export function toYaml(cfg) {
  const out = ['# generated by tests/e2e/lib.mjs'];
  emit(cfg, 0, out);
  return out.join('\n') + '\n';
}

/** A provider entry pointing at a standalone sim. */
export function simProvider(name, sim, extra = {}) {
  return { name, base_url: sim.baseURL, forward_headers: ['X-Sim-Fault'], ...extra };
}

/** Client keys: {id: secret} -> keys entries with their hashes; `models`
 * restricts: {id: [model, ...]}. */
export function keyEntries(secrets, models = {}) {
  return Object.entries(secrets).map(([id, secret]) => ({ id, sha256: sha256(secret), models: models[id] }));
}

// ---- the gateway -----------------------------------------------------------

export class Gateway {
  constructor(proc, port, configPath, config, env = {}) {
    this.proc = proc;
    this.port = port;
    this.configPath = configPath;
    this.config = config;
    this.env = env; // the environment restart() starts the next process with, too
    this.url = `http://127.0.0.1:${port}`;
    this.baseURL = `${this.url}/v1`;
  }

  /** An SDK client for the gateway with the given client key. */
  client(apiKey, opts = {}) {
    return new OpenAI({ baseURL: this.baseURL, apiKey, maxRetries: 0, timeout: ms(20000), ...opts });
  }

  fetch(p, init = {}) {
    return fetch(`${this.url}${p}`, init);
  }

  /** POSTs a JSON body (a string is sent as is) with a key. */
  post(p, body, { key, headers = {} } = {}) {
    return fetch(`${this.url}${p}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        ...(key ? { Authorization: `Bearer ${key}` } : {}),
        ...headers,
      },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  /** cfg as YAML, with the server and metering sections the gateway was
   * started with when cfg has none. */
  yaml(cfg) {
    return toYaml({ ...cfg, server: cfg.server ?? this.config.server,
                    metering: cfg.metering ?? this.config.metering });
  }

  /** Rewrites the configuration file (object or text); SIGHUP separately. */
  writeConfig(cfg) {
    writeFileSync(this.configPath, typeof cfg === 'string' ? cfg : this.yaml(cfg));
  }

  /** Sends SIGHUP and waits for the reload to be logged, accepted or
   * refused; returns the log line. */
  async reload({ timeout = ms(5000) } = {}) {
    const from = this.proc.lines.length;
    this.proc.signal('SIGHUP');
    const m = await this.proc.waitLine(/configuration reloaded|reload refused/, { timeout, from });
    return m.input;
  }

  /** The access log line of request id rid, once it is written. */
  async requestLog(rid, { timeout = ms(5000) } = {}) {
    return until(() => this.proc.requests().find((l) => l.rid === rid), {
      timeout, what: `the log line of request ${rid}`,
    });
  }

  async metrics() {
    const r = await this.fetch('/metrics');
    assert.equal(r.status, 200);
    return r.text();
  }

  /** Stops the gateway (SIGTERM, asserting a clean exit) and starts it
   * again on the same configuration file and data directory, or kills it
   * (kill: 'SIGKILL') without asserting anything about its end. */
  async restart({ kill, workers = 2 } = {}) {
    if (kill) {
      this.proc.signal(kill);
      await this.proc.exited;
    } else {
      await this.proc.stop();
      this.proc.assertClean();
    }
    const i = live.indexOf(this.proc);
    if (i >= 0) live.splice(i, 1);
    this.proc = new Proc('gateway', ['serve', '--config', this.configPath, '--listen', '127.0.0.1:0',
                                     '--workers', String(workers)], { env: this.env });
    const m = await this.proc.waitLine(/tollgate \S+ listening on 127\.0\.0\.1:(\d+)/, { timeout: ms(10000) });
    this.port = Number(m[1]);
    this.url = `http://127.0.0.1:${this.port}`;
    this.baseURL = `${this.url}/v1`;
  }

  /** The metering data directory (journal/ and ledger.db). */
  get dataDir() {
    return this.config.metering.data_dir;
  }

  /** Runs a CLI subcommand against this gateway's config (report, usage,
   * explain-price, migrate); args after the subcommand. */
  cli(sub, args = []) {
    return run([sub, '--config', this.configPath, ...args]);
  }

  /** `tollgate report ... --format json`, parsed; fails on a non-zero exit. */
  report(args = []) {
    const r = this.cli('report', [...args, '--format', 'json']);
    assert.equal(r.code, 0, `tollgate report ${args.join(' ')} exited ${r.code} (signal ${r.signal}): ${r.stderr}`);
    return JSON.parse(r.stdout);
  }

  /** The usage records (`tollgate usage --format json`), parsed. */
  usage(args = []) {
    const r = this.cli('usage', [...args, '--format', 'json']);
    assert.equal(r.code, 0, `tollgate usage ${args.join(' ')} exited ${r.code} (signal ${r.signal}): ${r.stderr}`);
    return JSON.parse(r.stdout).records;
  }

  /** Waits until the ledger holds n usage records (the ledger thread
   * commits every metering.flush_ms); returns them. */
  async records(n, { timeout = ms(10000), args = [] } = {}) {
    return until(() => {
      const recs = this.usage(args);
      return recs.length >= n ? recs : null;
    }, { timeout, what: `${n} usage records in the ledger` });
  }
}

/** The current UTC month as YYYY-MM (the period reports are asked for). */
export function thisMonth() {
  return new Date().toISOString().slice(0, 7);
}

/**
 * Starts `tollgate serve` with cfg (an object, written as YAML; its
 * server.listen is forced to 127.0.0.1:0). Options: workers, env, extraArgs,
 * shell (see Proc).
 */
export async function startGateway(cfg, { workers = 2, env = {}, extraArgs = [], shell } = {}) {
  const dir = tempDir();
  const configPath = path.join(dir, 'tollgate.yaml');
  const config = {
    ...cfg,
    server: { listen: '127.0.0.1:0', ...(cfg.server ?? {}) },
    // usage records go to the test's own directory, never the working one
    metering: { data_dir: path.join(dir, 'data'), ...(cfg.metering ?? {}) },
  };
  writeFileSync(configPath, toYaml(config));
  const args = ['serve', '--config', configPath, '--listen', '127.0.0.1:0', '--workers', String(workers),
                ...extraArgs];
  const proc = new Proc('gateway', args, { env, shell });
  const m = await proc.waitLine(/tollgate \S+ listening on 127\.0\.0\.1:(\d+)/, { timeout: ms(5000) });
  return new Gateway(proc, Number(m[1]), configPath, config, env);
}

// ---- errors ------------------------------------------------------------------

/** Asserts body is OpenAI's error shape; returns body.error. */
export function assertErrorShape(body, { code, type } = {}) {
  assert.equal(typeof body, 'object', 'error body is JSON');
  assert.ok(body.error && typeof body.error === 'object', `body has an error object: ${fmt(body)}`);
  const e = body.error;
  for (const k of ['message', 'type', 'param', 'code'])
    assert.ok(k in e, `error has "${k}": ${fmt(body)}`);
  assert.equal(typeof e.message, 'string');
  assert.ok(e.message.length > 0, 'error message is not empty');
  assert.equal(typeof e.type, 'string');
  if (code !== undefined) assert.equal(e.code, code, `error code: ${fmt(body)}`);
  if (type !== undefined) assert.equal(e.type, type, `error type: ${fmt(body)}`);
  return e;
}

/** Runs fn, which must throw an OpenAI APIError with the given status. */
export async function sdkError(fn, status) {
  try {
    await fn();
  } catch (e) {
    if (status !== undefined)
      assert.equal(e.status, status, `expected HTTP ${status}, got ${e.status}: ${e.message}`);
    return e;
  }
  assert.fail(`expected an error with status ${status}, but the call succeeded`);
}

// ---- raw HTTP over node:net ---------------------------------------------------

/** A TCP connection with a small HTTP/1.x response reader, for wire-level
 * cases (pipelining, keep-alive, slow heads, HTTP/1.0). */
export class Raw {
  static connect(port, { timeout = ms(5000) } = {}) {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: '127.0.0.1', port });
      const t = setTimeout(() => {
        s.destroy();
        reject(new Error(`connect to ${port} timed out`));
      }, timeout);
      s.once('connect', () => {
        clearTimeout(t);
        resolve(new Raw(s));
      });
      s.once('error', (e) => {
        clearTimeout(t);
        reject(e);
      });
    });
  }

  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.ended = false; // the peer closed (FIN or RST)
    this.error = null;
    this.waiters = new Set();
    this.arrivals = []; // {t, n}: when bytes came
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.arrivals.push({ t: Date.now(), n: d.length });
      this.wake();
    });
    sock.on('end', () => {
      this.ended = true;
      this.wake();
    });
    sock.on('close', () => {
      this.ended = true;
      this.closedAt ??= Date.now();
      this.wake();
    });
    sock.on('error', (e) => {
      this.error = e;
      this.ended = true;
      this.wake();
    });
  }

  wake() {
    for (const w of [...this.waiters]) w();
  }

  write(data) {
    return new Promise((resolve) => {
      if (this.sock.destroyed) return resolve(false);
      this.sock.write(data, (err) => resolve(!err));
    });
  }

  /** Waits until pred(this) is true (checked on every event). */
  wait(pred, { timeout = ms(5000), what = 'data' } = {}) {
    return new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try {
          v = pred(this);
        } catch (e) {
          return done(e);
        }
        if (v) return done(null, v);
        if (this.ended) {
          try {
            v = pred(this);
          } catch (e) {
            return done(e);
          }
          if (v) return done(null, v);
          return done(new Error(`connection closed while waiting for ${what}; got:\n` +
                                this.buf.toString('latin1').slice(0, 2000)));
        }
      };
      const timer = setTimeout(() => done(new Error(`no ${what} within ${timeout} ms; got:\n` +
                                                    this.buf.toString('latin1').slice(0, 2000))), timeout);
      const done = (err, v) => {
        clearTimeout(timer);
        this.waiters.delete(check);
        err ? reject(err) : resolve(v);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Reads the next whole response (removing it from the buffer). */
  async response(opts = {}) {
    const r = await this.wait((self) => parseResponse(self.buf, self.ended), { what: 'a response', ...opts });
    this.buf = this.buf.subarray(r.size);
    return r;
  }

  /** Waits for the peer to close the connection; resolves true. */
  closed(opts = {}) {
    return this.wait((self) => self.ended, { what: 'the connection to close', ...opts });
  }

  destroy() {
    this.sock.destroy();
  }
}

/** Parses one HTTP/1.x response at the start of buf: null when incomplete.
 * Bodies by Content-Length, chunked, or up to the close. 1xx skipped. */
export function parseResponse(buf, ended) {
  let at = 0;
  for (;;) {
    const headEnd = buf.indexOf('\r\n\r\n', at);
    if (headEnd < 0) return null;
    const head = buf.subarray(at, headEnd).toString('latin1').split('\r\n');
    const m = head[0].match(/^HTTP\/(1\.[01]) (\d{3}) ?(.*)$/);
    if (!m) throw new Error(`bad status line: ${JSON.stringify(head[0])}`);
    const headers = {};
    const rawHeaders = [];
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      const name = line.slice(0, i).trim().toLowerCase();
      const value = line.slice(i + 1).trim();
      rawHeaders.push([name, value]);
      headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
    }
    const status = Number(m[2]);
    let pos = headEnd + 4;
    if (status >= 100 && status < 200) {
      at = pos;
      continue;
    }
    let body;
    if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      const parts = [];
      for (;;) {
        const le = buf.indexOf('\r\n', pos);
        if (le < 0) return null;
        const size = parseInt(buf.subarray(pos, le).toString('latin1'), 16);
        if (Number.isNaN(size)) throw new Error('bad chunk size');
        pos = le + 2;
        if (size === 0) {
          // trailers end with an empty line
          const te = buf.indexOf('\r\n', pos);
          if (te < 0) return null;
          pos = te + 2;
          break;
        }
        if (buf.length < pos + size + 2) return null;
        parts.push(buf.subarray(pos, pos + size));
        pos += size + 2;
      }
      body = Buffer.concat(parts);
    } else if ('content-length' in headers) {
      const n = Number(headers['content-length']);
      if (buf.length < pos + n) return null;
      body = buf.subarray(pos, pos + n);
      pos += n;
    } else if (status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else {
      if (!ended) return null;
      body = buf.subarray(pos);
      pos = buf.length;
    }
    return {
      version: m[1], status, reason: m[3], headers, rawHeaders, body,
      text: body.toString('utf8'), size: pos,
      json() { return JSON.parse(this.text); },
    };
  }
}

/** The data fields of an SSE body, in order. */
export function sseData(text) {
  // an event without a data line (only comments, such as the gateway's
  // ": tollgate charge=..." summary) dispatches nothing
  return text.split('\n\n').map((e) => e.split('\n').filter((l) => l.startsWith('data:')))
    .filter((ls) => ls.length).map((ls) => ls.map((l) => l.slice(5).trimStart()).join('\n'));
}

/** Bytes of a raw request with a Content-Length body. */
export function httpRequest(method, p, { body, headers = {}, version = '1.1' } = {}) {
  const lines = [`${method} ${p} HTTP/${version}`, 'Host: 127.0.0.1'];
  for (const [k, v] of Object.entries(headers)) lines.push(`${k}: ${v}`);
  const b = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  if (b) lines.push(`Content-Length: ${b.length}`);
  return Buffer.concat([Buffer.from(lines.join('\r\n') + '\r\n\r\n'), b ?? Buffer.alloc(0)]);
}

/** Tries to open a TCP connection: 'refused', or 'connected'. */
export function probeConnect(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (e) => resolve(e.code === 'ECONNREFUSED' ? 'refused' : e.code));
  });
}

/** A chat request body. */
export function chat(model, content = 'Hello, world!', extra = {}) {
  return { model, messages: [{ role: 'user', content }], ...extra };
}
