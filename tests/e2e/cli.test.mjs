// The command line: --version, help, keys hash, flag and configuration
// errors with their exit codes, and serve with --workers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import * as lib from './lib.mjs';

after(lib.stopAll);

describe('informational commands', () => {
  test('--version', () => {
    const r = lib.run(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^tollgate \d+\.\d+\.\d+\n$/);
  });

  test('help prints the usage of every subcommand to stdout', () => {
    const r = lib.run(['help']);
    assert.equal(r.code, 0, r.stderr);
    for (const s of ['tollgate serve', 'tollgate sim', 'tollgate keys hash', '--config', '--workers', '--listen'])
      assert.ok(r.stdout.includes(s), `help mentions ${s}`);
  });

  test('keys hash prints the sha256 of the key', () => {
    for (const key of ['sk-tollgate-demo', 'sk-e2e-\u00e9\u00e8-unicode', 'a']) {
      const r = lib.run(['keys', 'hash', key]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${lib.sha256(key)}\n`);
    }
    // the example configuration's demo key
    assert.equal(lib.run(['keys', 'hash', 'sk-tollgate-demo']).stdout.trim(),
                 '179510ee3e248a7bfae1a518d344461ddef0e32bbf53b40845f2d3e157c5973f');
  });
});

describe('usage errors exit 2', () => {
  const cases = [
    [],
    ['frobnicate'],
    ['serve', '--bogus'],
    ['serve'],
    ['serve', '--config'],
    ['serve', '--config', '/dev/null', '--listen', 'not-an-address'],
    ['serve', '--config', '/dev/null', '--workers', 'many'],
    ['sim', '--bogus', '1'],
    ['sim', '--fault', 'meltdown:5'],
    ['sim', '--fault', '500:101'],
    ['sim', '--seed'],
    ['keys'],
    ['keys', 'hash'],
    ['keys', 'unhash', 'x'],
  ];
  for (const args of cases) {
    test(`tollgate ${args.join(' ') || '(nothing)'}`, () => {
      const r = lib.run(args);
      assert.equal(r.code, 2, `exit code; stderr: ${r.stderr}`);
      assert.ok(r.stderr.length > 0, 'says what is wrong on stderr');
      assert.equal(r.stdout, '');
    });
  }
});

describe('configuration errors exit 1 naming FILE:LINE', () => {
  const dir = lib.tempDir();
  const write = (name, text) => {
    const p = path.join(dir, name);
    writeFileSync(p, text);
    return p;
  };
  const good = [
    'server:',
    '  listen: 127.0.0.1:0',
    'providers:',
    '  - name: up',
    '    base_url: http://127.0.0.1:9/v1',
    'offerings:',
    '  - {id: up/m, provider: up, model: m}',
    'models:',
    '  - {name: m, offerings: [up/m]}',
    'keys:',
    `  - {id: k, sha256: ${lib.sha256('k')}}`,
    // usage records in the test's own directory, not tests/tollgate-data
    'metering:',
    `  data_dir: ${path.join(dir, 'data')}`,
  ];

  const cases = [
    ['unknown field', (l) => l.toSpliced(2, 0, '  no_such_field: 3'), 3, /no_such_field/],
    ['bad base_url', (l) => l.with(4, '    base_url: ftp://example.com/v1'), 5, /providers\[0\]\.base_url/],
    ['unknown offering', (l) => l.with(8, '  - {name: m, offerings: [up/nope]}'), 9, /up\/nope/],
    ['bad sha256', (l) => l.with(10, '  - {id: k, sha256: sk-not-a-hash}'), 11, /sha256/],
    ['YAML syntax', (l) => l.with(6, '  - {id: up/m, provider: up, model: m'), null, /yaml|:\d+:/],
    ['number out of range', (l) => l.toSpliced(2, 0, '  workers: 100000'), 3, /workers/],
  ];
  for (const [name, edit, line, re] of cases) {
    test(name, () => {
      const file = write(`${name.replace(/\W+/g, '-')}.yaml`, edit(good).join('\n') + '\n');
      const r = lib.run(['serve', '--config', file]);
      assert.equal(r.code, 1, `exit code; stderr: ${r.stderr}`);
      if (line !== null) assert.ok(r.stderr.includes(`${file}:${line}:`), `names ${file}:${line}: in ${r.stderr}`);
      else assert.match(r.stderr, new RegExp(`${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}:\\d+:`));
      assert.match(r.stderr, re);
      // the sha256 value is never echoed (it may be a pasted key)
      assert.ok(!r.stderr.includes('sk-not-a-hash'));
    });
  }

  test('a missing file', () => {
    const r = lib.run(['serve', '--config', path.join(dir, 'absent.yaml')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /absent\.yaml/);
  });

  test('the good file starts (and stops cleanly)', async () => {
    const file = write('good.yaml', good.join('\n') + '\n');
    const p = new lib.Proc('gateway', ['serve', '--config', file, '--listen', '127.0.0.1:0', '--workers', '1']);
    await p.waitLine(/listening on 127\.0\.0\.1:\d+/);
    await p.stop();
    p.assertClean();
  });
});

describe('serve --workers and ports', () => {
  let sim, gw;
  before(async () => {
    sim = await lib.startSim({ seed: 1 });
    gw = await lib.startGateway({
      providers: [lib.simProvider('s', sim)],
      offerings: [{ id: 's/fast', provider: 's', model: 'sim-fast' }],
      models: [{ name: 'fast', offerings: ['s/fast'] }],
      keys: lib.keyEntries({ w: 'sk-e2e-workers' }),
    }, { workers: 2 });
  });

  test('--workers 2 serves requests on many connections', async () => {
    assert.ok(gw.proc.args.includes('--workers') && gw.proc.args.includes('2'));
    const results = await Promise.all(Array.from({ length: 16 }, async (_, i) => {
      const c = await lib.Raw.connect(gw.port);
      await c.write(lib.httpRequest('POST', '/v1/chat/completions', {
        body: { ...lib.chat('fast', `hello ${i}`), max_tokens: 2 },
        headers: { Authorization: 'Bearer sk-e2e-workers', Connection: 'close' },
      }));
      const r = await c.response();
      c.destroy();
      return r;
    }));
    for (const r of results) {
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json().usage.completion_tokens, 2);
    }
    const stats = await sim.model('sim-fast');
    assert.equal(stats.requests, 16);
  });

  test('a second gateway on a port another one listens on: exit 1', async () => {
    // docs/operations.md: exit 1 when the address cannot be bound. With
    // SO_REUSEPORT on both, the kernel would let the second one in and
    // split the first one's connections between them.
    const dup = new lib.Proc('second gateway',
      ['serve', '--config', gw.configPath, '--listen', `127.0.0.1:${gw.port}`, '--workers', '1'], { expectCode: 1 });
    const outcome = await Promise.race([
      dup.exited.then(() => 'exited'),
      dup.waitLine(/listening on/, { timeout: lib.ms(5000) }).then(() => 'listening', () => 'exited'),
    ]);
    if (outcome === 'listening') {
      await dup.stop();
      dup.expectCode = 0; // reported below, not again by stopAll
    }
    assert.equal(outcome, 'exited', `a second gateway started on port ${gw.port}, which another one listens on:\n${dup.tail()}`);
    assert.equal(dup.exit.code, 1);
    assert.match(dup.text().join('\n'), /cannot listen|in use/);
  });

  test('a port held by another program: exit 1', async () => {
    const srv = net.createServer();
    await new Promise((res) => srv.listen(0, '127.0.0.1', res));
    try {
      const r = lib.run(['sim', '--listen', `127.0.0.1:${srv.address().port}`]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /cannot listen on 127\.0\.0\.1:\d+: Address already in use/);
    } finally {
      srv.close();
    }
  });
});
