#!/usr/bin/env node
// A real Node.js Redis client (ioredis or node-redis) run against respgate, for
// tests/integration/test_node_clients.py.
//
//   node workload.js --client ioredis|node-redis --proto 3|2 --port PORT
//                    [--mode features|load] [--prefix P] [--duration S]
//                    [--writers N] [--readers N] [--pace-ms MS] [--settle-ms MS]
//
// Each option may also come from the environment: WL_CLIENT, WL_PROTO, WL_PORT,
// WL_MODE, WL_PREFIX, WL_DURATION, WL_WRITERS, WL_READERS, WL_PACE_MS, WL_SETTLE_MS.
//
// --proto 3 leaves the library at its default protocol (both speak RESP3 by default,
// with HELLO 3) and checks that RESP3 was negotiated; --proto 2 asks for RESP2.
//
// features: strings, hashes, lists, streams, a 100-command pipeline, MULTI/EXEC and a
//   WATCH-aborted transaction, EVAL/EVALSHA, pub/sub (and, in RESP3, a GET on the
//   subscribed connection), BLPOP woken by another connection, SCAN over 1000 keys and
//   HSCAN over a 500-field hash. Prints {ok, failures: [...], ...}; exit 0 if ok.
// load: --writers connections INCR their own counter, --readers connections GET, each
//   in a loop, until --duration seconds pass or SIGTERM. Prints {writes, reads,
//   error_count, errors: [...], reconnects, acked: {key: last acknowledged value},
//   regressions (acknowledged increments a later INCR reply did not include), ...}. On stderr,
//   {"event":"flowing"} once every connection has had 20 replies.
'use strict';

function option(name, env, dflt) {
  const i = process.argv.indexOf('--' + name);
  if (i !== -1 && i + 1 < process.argv.length) return process.argv[i + 1];
  if (process.env[env] !== undefined) return process.env[env];
  return dflt;
}

const CLIENT = option('client', 'WL_CLIENT', 'ioredis');
const PROTO = Number(option('proto', 'WL_PROTO', '3'));
const PORT = Number(option('port', 'WL_PORT', '6379'));
const MODE = option('mode', 'WL_MODE', 'features');
const PREFIX = option('prefix', 'WL_PREFIX', `wl:${CLIENT}:${PROTO}`);
const DURATION = Number(option('duration', 'WL_DURATION', '4'));
const WRITERS = Number(option('writers', 'WL_WRITERS', '4'));
const READERS = Number(option('readers', 'WL_READERS', '2'));
const PACE_MS = Number(option('pace-ms', 'WL_PACE_MS', '2'));
// features: how long SCAN and HSCAN wait after writing their data, so that respgate's
// read-your-writes horizon lets their reads go to the replicas (it sends a client's
// reads to the master until a probe shows the replicas past its last write).
const SETTLE_MS = Number(option('settle-ms', 'WL_SETTLE_MS', '400'));

if (!['ioredis', 'node-redis'].includes(CLIENT) || ![2, 3].includes(PROTO) ||
    !['features', 'load'].includes(MODE) || !(PORT > 0)) {
  process.stderr.write('usage: workload.js --client ioredis|node-redis --proto 3|2 --port N ' +
                       '[--mode features|load] [--prefix P] [--duration S]\n');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const since = () => (Date.now() - t0) / 1000;

// Connection-level events of every connection, and whether we are shutting down
// (closes we cause are not counted).
const events = { closes: 0, reconnecting: 0, socketErrors: 0, messages: [] };
let stopping = false;
function noteEvent(kind, who, err) {
  if (stopping) return;
  events[kind] += 1;
  if (events.messages.length < 50) {
    events.messages.push({ t: since(), who, event: kind, msg: err ? String(err.message || err) : '' });
  }
}

// --- adapters: one interface over both libraries ----------------------------------
//
// A connection c has: c.cmd(...args) (raw command, replies as strings/numbers/arrays;
// RESP3 maps may come back as objects), c.protocol (what the client negotiated),
// c.pipeline(cmds), c.multi(cmds) (null when a WATCH aborted it), c.watch(key),
// c.subscribe(channel, onMessage), c.scanKeys(match), c.hscanFields(key),
// c.incr(key), c.get(key), c.close().

async function openIoredis(who) {
  const Redis = require('ioredis');
  const opts = {
    host: '127.0.0.1',
    port: PORT,
    lazyConnect: true,
    // No client-side retries, so that every failure respgate causes is visible and
    // counted here rather than hidden behind a silent retry:
    // - maxRetriesPerRequest 0: a command caught by a connection loss fails at once
    //   (default 20: it is kept and resent over up to 20 reconnects);
    // - autoResendUnfulfilledCommands false: commands in flight when the connection
    //   closed are never sent again on the next connection (default true);
    // - enableOfflineQueue false: a command issued while disconnected fails instead of
    //   waiting for the reconnect (a reconnect shows as errors, not as a pause);
    // - reconnectOnError null (the default): no reconnect-and-resend on error replies.
    // It still reconnects (after 50 ms), so a load goes on and reconnects are counted.
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    enableOfflineQueue: false,
    reconnectOnError: null,
    retryStrategy: () => 50,
    connectTimeout: 5000,
  };
  // ioredis 6: `protocol` (default 3: HELLO 3, downgrading to RESP2 only if the server
  // refuses it). For RESP3 we leave the default alone.
  if (PROTO === 2) opts.protocol = 2;
  const r = new Redis(opts);
  r.on('error', (e) => noteEvent('socketErrors', who, e));
  r.on('close', () => noteEvent('closes', who));
  r.on('reconnecting', () => noteEvent('reconnecting', who));
  await r.connect();
  const c = {
    raw: r,
    // What the handshake settled on: 3 after a successful HELLO 3, 2 if asked for or
    // if the server refused HELLO 3 (ioredis then downgrades silently).
    get protocol() { return r.condition ? r.condition.protocol : undefined; },
    cmd: (...args) => r.call(...args.map(String)),
    incr: (k) => r.incr(k),
    get: (k) => r.get(k),
    async pipeline(cmds) {
      const p = r.pipeline();
      for (const a of cmds) p.call(...a.map(String));
      const res = await p.exec();
      return res.map(([err, v]) => (err ? err : v));
    },
    async multi(cmds) {
      const m = r.multi();
      for (const a of cmds) m.call(...a.map(String));
      const res = await m.exec();
      if (res === null) return null;
      return res.map(([err, v]) => (err ? err : v));
    },
    watch: (k) => r.watch(k),
    async subscribe(channel, onMessage) {
      r.on('message', (ch, msg) => { if (ch === channel) onMessage(msg); });
      await r.subscribe(channel);
    },
    async scanKeys(match) {
      const out = [];
      const s = r.scanStream({ match, count: 100 });
      for await (const keys of s) out.push(...keys);
      return out;
    },
    async hscanFields(key) {
      const out = [];
      const s = r.hscanStream(key, { count: 50 });
      for await (const flat of s) for (let i = 0; i < flat.length; i += 2) out.push(flat[i]);
      return out;
    },
    async wireProtocol() {
      // The replies themselves: a second connection with the same settings, asking for
      // RESP3 map replies as objects when RESP3 was negotiated.
      if (PROTO === 2) return (Array.isArray(await c.cmd('HGETALL', PREFIX + ':probe'))) ? 2 : 3;
      const p = new Redis({ ...opts, replyMapping: 'resp3' });
      p.on('error', () => {});
      await p.connect();
      try {
        await p.hset(PREFIX + ':probe', 'f', 'v');
        const rep = await p.call('HGETALL', PREFIX + ':probe');
        return Array.isArray(rep) ? 2 : 3;
      } finally { p.disconnect(); }
    },
    async close() { r.disconnect(); },
  };
  return c;
}

async function openNodeRedis(who) {
  const { createClient } = require('redis');
  const opts = {
    socket: {
      host: '127.0.0.1',
      port: PORT,
      connectTimeout: 5000,
      // Reconnect after 50 ms (so a load goes on and reconnects are counted).
      reconnectStrategy: () => 50,
    },
    // No client-side retries: node-redis never resends a command that was in flight
    // when its connection broke (those are rejected), and with disableOfflineQueue
    // a command issued while reconnecting fails at once instead of waiting for the
    // new connection, so a reconnect shows as errors rather than as a pause.
    disableOfflineQueue: true,
  };
  // node-redis 6: `RESP` (default 3: HELLO 3; no fallback, the connection fails if
  // the server refuses it). For RESP3 we leave the default alone.
  if (PROTO === 2) opts.RESP = 2;
  const r = createClient(opts);
  r.on('error', (e) => noteEvent('socketErrors', who, e));
  r.on('end', () => noteEvent('closes', who));
  r.on('reconnecting', () => noteEvent('reconnecting', who));
  await r.connect();
  let closedByUs = false;
  const c = {
    raw: r,
    protocol: r.options && r.options.RESP !== undefined ? r.options.RESP : 3,
    cmd: (...args) => r.sendCommand(args.map(String)),
    incr: (k) => r.incr(k),
    get: (k) => r.get(k),
    async pipeline(cmds) {
      const p = r.multi();
      for (const a of cmds) p.addCommand(a.map(String));
      const res = await p.execAsPipeline();
      return res;
    },
    async multi(cmds) {
      const m = r.multi();
      for (const a of cmds) m.addCommand(a.map(String));
      try {
        return await m.exec();
      } catch (e) {
        if (e && (e.name === 'WatchError' || /WATCH/i.test(String(e.message)))) return null;
        throw e;
      }
    },
    watch: (k) => r.watch(k),
    async subscribe(channel, onMessage) {
      await r.subscribe(channel, (msg) => onMessage(msg));
    },
    async scanKeys(match) {
      const out = [];
      for await (const keys of r.scanIterator({ MATCH: match, COUNT: 100 })) {
        out.push(...(Array.isArray(keys) ? keys : [keys]));
      }
      return out;
    },
    async hscanFields(key) {
      const out = [];
      for await (const entries of r.hScanIterator(key, { COUNT: 50 })) {
        for (const e of (Array.isArray(entries) ? entries : [entries])) out.push(e.field);
      }
      return out;
    },
    async wireProtocol() {
      // A RESP3 map reply arrives as an object, a RESP2 one as a flat array.
      await r.hSet(PREFIX + ':probe', 'f', 'v');
      return Array.isArray(await r.sendCommand(['HGETALL', PREFIX + ':probe'])) ? 2 : 3;
    },
    async close() {
      if (closedByUs) return;
      closedByUs = true;
      try { r.destroy(); } catch (e) { /* already gone */ }
    },
  };
  return c;
}

const open = (who) => (CLIENT === 'ioredis' ? openIoredis(who) : openNodeRedis(who));

// --- features -------------------------------------------------------------------

function assertEq(got, want, what) {
  const g = JSON.stringify(got), w = JSON.stringify(want);
  if (g !== w) throw new Error(`${what}: got ${g}, want ${w}`);
}
function assertTrue(cond, what) { if (!cond) throw new Error(what); }

// A full SCAN-family iteration over data nobody changes returns every element exactly once.
function assertEveryOnce(got, want, what) {
  const wanted = new Set(want), seen = new Set();
  let dups = 0;
  for (const x of got) { if (seen.has(x)) dups++; seen.add(x); }
  const missing = want.filter((x) => !seen.has(x));
  const extra = [...seen].filter((x) => !wanted.has(x));
  if (dups || missing.length || extra.length) {
    throw new Error(`${what} returned ${got.length} for ${want.length}: ${dups} twice, ` +
                    `${missing.length} missing (${JSON.stringify(missing.slice(0, 5))}), ` +
                    `${extra.length} not there (${JSON.stringify(extra.slice(0, 5))})`);
  }
}

// A map reply as [[k, v], ...]: a flat array (RESP2, or ioredis' legacy mapping),
// an object or a Map (RESP3 in node-redis).
function pairs(rep) {
  if (rep instanceof Map) return [...rep.entries()];
  if (Array.isArray(rep)) {
    const out = [];
    for (let i = 0; i < rep.length; i += 2) out.push([rep[i], rep[i + 1]]);
    return out;
  }
  if (rep && typeof rep === 'object') return Object.entries(rep);
  throw new Error('not a map reply: ' + JSON.stringify(rep));
}

// XREAD/XREADGROUP's reply as [[stream, entries], ...]: RESP2 gives a list of
// [stream, entries]; RESP3 a map, which ioredis' default mapping flattens to
// [stream, entries, ...] and node-redis turns into an object.
function streamsReply(rep) {
  if (rep === null) return [];
  if (Array.isArray(rep) && rep.length && Array.isArray(rep[0])) return rep;
  return pairs(rep);
}

async function withTimeout(p, ms, what) {
  let timer;
  const t = new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`${what}: no reply in ${ms} ms`)), ms); });
  try { return await Promise.race([p, t]); } finally { clearTimeout(timer); }
}

async function features() {
  const P = PREFIX;
  const conns = [];
  const conn = async (who) => { const c = await open(who); conns.push(c); return c; };
  const c = await conn('main');
  const other = await conn('other');
  const results = {};
  const failures = [];
  async function check(name, fn) {
    const start = Date.now();
    try {
      await withTimeout(fn(), 15000, name);
      results[name] = { ok: true, ms: Date.now() - start };
    } catch (e) {
      results[name] = { ok: false, ms: Date.now() - start };
      failures.push({ check: name, error: String(e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : e) });
    }
  }

  const negotiated = c.protocol;
  let wire;
  await check('protocol', async () => {
    wire = await c.wireProtocol();
    assertEq(negotiated, PROTO, 'protocol the client negotiated');
    assertEq(wire, PROTO, 'protocol of the replies on the wire');
  });

  await check('strings', async () => {
    assertEq(await c.cmd('SET', `${P}:s`, 'hello'), 'OK', 'SET');
    assertEq(await c.cmd('GET', `${P}:s`), 'hello', 'GET');
    assertEq(await c.cmd('APPEND', `${P}:s`, ' world'), 11, 'APPEND');
    assertEq(await c.cmd('GET', `${P}:s`), 'hello world', 'GET after APPEND');
    assertEq(await c.cmd('INCR', `${P}:n`), 1, 'INCR');
    assertEq(await c.cmd('INCRBY', `${P}:n`, 41), 42, 'INCRBY');
    assertEq(await c.cmd('MSET', `${P}:m1`, 'a', `${P}:m2`, 'b'), 'OK', 'MSET');
    assertEq(await c.cmd('MGET', `${P}:m1`, `${P}:m2`, `${P}:none`), ['a', 'b', null], 'MGET');
    assertEq(await c.cmd('SET', `${P}:ex`, 'v', 'EX', 100), 'OK', 'SET EX');
    const ttl = await c.cmd('TTL', `${P}:ex`);
    assertTrue(ttl > 90 && ttl <= 100, 'TTL ' + ttl);
    assertEq(await c.cmd('EXISTS', `${P}:s`, `${P}:none`), 1, 'EXISTS');
    assertEq(await c.cmd('DEL', `${P}:m1`, `${P}:m2`), 2, 'DEL');
    assertEq(await c.get(`${P}:m1`), null, 'GET deleted');
  });

  await check('hashes', async () => {
    const k = `${P}:h`;
    assertEq(await c.cmd('HSET', k, 'a', '1', 'b', '2', 'c', '3'), 3, 'HSET');
    assertEq(await c.cmd('HGET', k, 'b'), '2', 'HGET');
    assertEq(await c.cmd('HINCRBY', k, 'a', 10), 11, 'HINCRBY');
    assertEq(await c.cmd('HDEL', k, 'c'), 1, 'HDEL');
    assertEq(await c.cmd('HLEN', k), 2, 'HLEN');
    const all = Object.fromEntries(pairs(await c.cmd('HGETALL', k)));
    assertEq(all, { a: '11', b: '2' }, 'HGETALL');
    assertEq(await c.cmd('HMGET', k, 'a', 'zz'), ['11', null], 'HMGET');
  });

  await check('lists', async () => {
    const k = `${P}:l`;
    assertEq(await c.cmd('RPUSH', k, 'b', 'c', 'd'), 3, 'RPUSH');
    assertEq(await c.cmd('LPUSH', k, 'a'), 4, 'LPUSH');
    assertEq(await c.cmd('LRANGE', k, 0, -1), ['a', 'b', 'c', 'd'], 'LRANGE');
    assertEq(await c.cmd('LPOP', k), 'a', 'LPOP');
    assertEq(await c.cmd('RPOP', k), 'd', 'RPOP');
    assertEq(await c.cmd('LLEN', k), 2, 'LLEN');
    assertEq(await c.cmd('LINDEX', k, 1), 'c', 'LINDEX');
  });

  await check('streams', async () => {
    const k = `${P}:x`;
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await c.cmd('XADD', k, '*', 'n', i, 'who', CLIENT));
    assertEq(await c.cmd('XLEN', k), 5, 'XLEN');
    const range = await c.cmd('XRANGE', k, '-', '+');
    assertEq(range.map((e) => e[0]), ids, 'XRANGE ids');
    assertEq(range.map((e) => e[1]), ids.map((_, i) => ['n', String(i), 'who', CLIENT]), 'XRANGE fields');
    assertEq(await c.cmd('XGROUP', 'CREATE', k, 'g', '0'), 'OK', 'XGROUP CREATE');
    const got = streamsReply(await c.cmd('XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', 10, 'STREAMS', k, '>'));
    assertEq(got.length, 1, 'XREADGROUP streams');
    assertEq(got[0][0], k, 'XREADGROUP stream name');
    assertEq(got[0][1].map((e) => e[0]), ids, 'XREADGROUP ids');
    assertEq(await c.cmd('XACK', k, 'g', ...ids), 5, 'XACK');
    const again = streamsReply(await c.cmd('XREADGROUP', 'GROUP', 'g', 'c1', 'COUNT', 10, 'STREAMS', k, '>'));
    assertEq(again, [], 'XREADGROUP after all were read');
  });

  await check('pipeline', async () => {
    const cmds = [];
    for (let i = 0; i < 50; i++) cmds.push(['SET', `${P}:p:${i}`, `v${i}`]);
    for (let i = 0; i < 50; i++) cmds.push(['GET', `${P}:p:${i}`]);
    const res = await c.pipeline(cmds);
    assertEq(res.length, 100, 'pipeline replies');
    const errs = res.filter((r) => r instanceof Error);
    assertEq(errs.map(String), [], 'pipeline errors');
    assertEq(res.slice(0, 50), Array(50).fill('OK'), 'pipelined SETs');
    assertEq(res.slice(50), [...Array(50).keys()].map((i) => `v${i}`), 'pipelined GETs');
  });

  await check('transaction', async () => {
    const k = `${P}:t`;
    const res = await c.multi([['SET', k, '1'], ['INCR', k], ['GET', k]]);
    assertEq(res, ['OK', 2, '2'], 'MULTI/EXEC');
  });

  await check('watch_aborts_transaction', async () => {
    const k = `${P}:w`;
    await c.cmd('SET', k, 'start');
    assertEq(await c.watch(k), 'OK', 'WATCH');
    assertEq(await other.cmd('SET', k, 'theirs'), 'OK', 'SET by another connection');
    const res = await c.multi([['SET', k, 'mine']]);
    assertEq(res, null, 'EXEC after the watched key changed');
    assertEq(await c.cmd('GET', k), 'theirs', 'the other write stands');
    // and a WATCH whose key nobody touched commits
    assertEq(await c.watch(k), 'OK', 'WATCH again');
    assertEq(await c.multi([['SET', k, 'mine']]), ['OK'], 'EXEC with the key untouched');
    assertEq(await other.cmd('GET', k), 'mine', 'the transaction wrote');
  });

  await check('scripts', async () => {
    const k = `${P}:lua`;
    const script = "return redis.call('INCRBY', KEYS[1], ARGV[1])";
    assertEq(await c.cmd('EVAL', script, 1, k, 5), 5, 'EVAL');
    const sha = await c.cmd('SCRIPT', 'LOAD', script);
    assertTrue(/^[0-9a-f]{40}$/.test(sha), 'SCRIPT LOAD sha ' + sha);
    assertEq(await c.cmd('EVALSHA', sha, 1, k, 7), 12, 'EVALSHA');
    assertEq(await other.cmd('EVALSHA', sha, 1, k, 1), 13, 'EVALSHA on another connection');
    assertEq(await c.cmd('EVAL', "return redis.call('GET', KEYS[1])", 1, k), '13', 'EVAL read');
  });

  await check('pubsub', async () => {
    const sub = await conn('subscriber');
    const ch = `${P}:ch`;
    const got = [];
    let done;
    const all = new Promise((r) => { done = r; });
    await sub.subscribe(ch, (msg) => { got.push(msg); if (got.length === 10) done(); });
    if (PROTO === 3) {
      // RESP3 lets a subscribed connection run ordinary commands.
      await c.cmd('SET', `${P}:insub`, 'x');
      assertEq(await sub.cmd('GET', `${P}:insub`), 'x', 'GET on the subscribed connection');
    }
    for (let i = 0; i < 10; i++) await c.cmd('PUBLISH', ch, `m${i}`);
    await withTimeout(all, 5000, `10 messages (got ${got.length})`).catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(got)}`);
    });
    assertEq(got, [...Array(10).keys()].map((i) => `m${i}`), 'messages in order');
    if (PROTO === 3) {
      assertEq(await sub.cmd('GET', `${P}:insub`), 'x', 'GET on the subscribed connection after messages');
    }
  });

  await check('blocking_pop', async () => {
    const k = `${P}:bl`;
    const blocked = await conn('blocked');
    const start = Date.now();
    const popped = blocked.cmd('BLPOP', k, 5);
    await sleep(100);
    assertEq(await other.cmd('RPUSH', k, 'woken'), 1, 'RPUSH');
    const rep = await popped;
    const took = Date.now() - start;
    assertEq(rep, [k, 'woken'], 'BLPOP');
    assertTrue(took >= 90 && took < 4000, `BLPOP returned after ${took} ms`);
    assertEq(await blocked.cmd('LLEN', k), 0, 'LLEN after BLPOP');
  });

  await check('scan', async () => {
    const want = [];
    for (let i = 0; i < 1000; i++) want.push(`${P}:scan:${i}`);
    for (let i = 0; i < 1000; i += 250) {
      const args = [];
      for (const key of want.slice(i, i + 250)) args.push(key, '1');
      assertEq(await c.cmd('MSET', ...args), 'OK', 'MSET');
    }
    await sleep(SETTLE_MS);
    const got = await c.scanKeys(`${P}:scan:*`);
    assertEveryOnce(got, want, 'keys SCAN');
  });

  await check('hscan', async () => {
    const k = `${P}:bighash`;
    const want = [];
    const args = [];
    // One value longer than hash-max-listpack-value (64) makes it a real hash table,
    // so HSCAN takes several calls (a listpack comes back whole in one).
    for (let i = 0; i < 500; i++) { want.push(`f${i}`); args.push(`f${i}`, i ? `v${i}` : 'v'.repeat(100)); }
    assertEq(await c.cmd('HSET', k, ...args), 500, 'HSET 500 fields');
    assertEq(await c.cmd('OBJECT', 'ENCODING', k), 'hashtable', 'encoding of the hash');
    await sleep(SETTLE_MS);
    const got = await c.hscanFields(k);
    assertEveryOnce(got, want, 'fields HSCAN');
  });

  stopping = true;
  for (const x of conns) await x.close();
  const out = {
    client: CLIENT, proto: PROTO, negotiated, wire, ok: failures.length === 0, failures,
    checks: results, connection_events: events,
  };
  return out;
}

// --- load -----------------------------------------------------------------------

async function load() {
  const acked = {};
  const errors = [];
  let writes = 0, reads = 0, regressions = 0, errorCount = 0;
  const lastWriteAt = {}; // writer -> wall-clock ms of its last acknowledged INCR
  const okCount = {};
  const conns = [];
  let flowingSent = false;

  function flowingCheck() {
    if (flowingSent) return;
    const names = Object.keys(okCount);
    if (names.length === WRITERS + READERS && names.every((n) => okCount[n] >= 20)) {
      flowingSent = true;
      process.stderr.write(JSON.stringify({ event: 'flowing', t: since() }) + '\n');
    }
  }

  async function loop(who, write) {
    const c = await open(who);
    conns.push(c);
    okCount[who] = 0;
    const key = write ? `${PREFIX}:w:${who}` : `${PREFIX}:r`;
    while (!stopping) {
      try {
        if (write) {
          const v = Number(await c.incr(key));
          if (acked[key] !== undefined && v <= acked[key]) regressions += acked[key] - v + 1;
          acked[key] = v;
          writes++;
          lastWriteAt[who] = Date.now();
        } else {
          await c.get(key);
          reads++;
        }
        okCount[who]++;
        flowingCheck();
        if (PACE_MS > 0) await sleep(PACE_MS);
      } catch (e) {
        errorCount++;
        if (errors.length < 200) {
          errors.push({ t: since(), who, op: write ? 'INCR' : 'GET', msg: String(e && e.message || e) });
        }
        await sleep(20);
      }
    }
  }

  const negotiated = [];
  const loops = [];
  for (let i = 0; i < WRITERS; i++) loops.push(loop(`w${i}`, true));
  for (let i = 0; i < READERS; i++) loops.push(loop(`r${i}`, false));
  // all connections open before anything is measured
  let stopTimer;
  const stopped = new Promise((resolve) => {
    stopTimer = setTimeout(resolve, DURATION * 1000);
    process.on('SIGTERM', resolve);
    process.on('SIGINT', resolve);
  });
  await stopped;
  clearTimeout(stopTimer);
  stopping = true;
  const tStop = since();
  // Every loop finishes its request in flight; respgate may hold one up to hold_ms.
  const finished = await Promise.race([Promise.all(loops).then(() => true), sleep(20000).then(() => false)]);
  for (const c of conns) negotiated.push(c.protocol);
  for (const c of conns) await c.close();
  return {
    client: CLIENT, proto: PROTO, negotiated: [...new Set(negotiated)], writes, reads,
    error_count: errorCount, errors, // the first 200
    // The earliest of the writers' last acknowledged writes (wall-clock ms): every
    // writer was still writing then.
    writers_last_ok_ms: Object.keys(lastWriteAt).length === WRITERS ? Math.min(...Object.values(lastWriteAt)) : null,
    // A connection lost shows as a 'close' (ioredis) or an 'error' (node-redis) event,
    // and a new connection as 'reconnecting' (both).
    reconnects: Math.max(events.reconnecting, CLIENT === 'ioredis' ? events.closes : events.socketErrors),
    connection_events: events,
    regressions, acked, finished, duration: tStop,
  };
}

(async () => {
  let out;
  try {
    out = MODE === 'features' ? await features() : await load();
  } catch (e) {
    out = { client: CLIENT, proto: PROTO, ok: false, fatal: String(e && e.stack || e), connection_events: events };
  }
  process.stdout.write(JSON.stringify(out) + '\n');
  // Let stdout drain, then leave even if a socket lingers.
  setTimeout(() => process.exit(out.ok === false ? 1 : 0), 50);
})();
