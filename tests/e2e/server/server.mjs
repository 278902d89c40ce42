// Test authorization server for flow's end-to-end suite.
//
// Runs oidc-provider (pinned in package.json / package-lock.json) on 127.0.0.1
// and prints exactly one line to stdout once it accepts connections:
//
//     READY http://127.0.0.1:<port>
//
// The issuer identifier is that URL. Everything else the server or the library
// has to say goes to stderr.
//
// Environment:
//   PORT               port to bind (default 0: an ephemeral port)
//   ACCESS_TOKEN_TTL   access token lifetime in seconds (default 3600)
//   FLOW_TEST_CLIENTS  path to a JSON file holding an array of extra client
//                      metadata objects, appended to the static clients below
//   FLOW_EXIT_ON_STDIN_EOF=1
//                      exit when stdin reaches EOF (the harness sets it, so a
//                      killed test run does not leave the server behind)
//
// This is a development setup: plain http, development signing keys, the
// built-in devInteractions login/consent pages and an in-memory store.

import { readFileSync } from 'node:fs';
import * as http from 'node:http';
import { format } from 'node:util';

// oidc-provider prints its NOTICE lines with console.info, i.e. on stdout, and
// some of them only appear while requests are served. stdout belongs to the
// READY line alone, so send console.log/info/debug to stderr before loading
// the library (hence the dynamic import below).
const toStderr = (...args) => {
  process.stderr.write(`${format(...args)}\n`);
};
console.log = toStderr;
console.info = toStderr;
console.debug = toStderr;

const { default: Provider } = await import('oidc-provider');

const HOST = '127.0.0.1';

function describe(err) {
  const detail = err?.error_description ? ` (${err.error_description})` : '';
  return `${err?.message ?? err}${detail}`;
}

function fail(message) {
  process.stderr.write(`server.mjs: ${message}\n`);
  process.exit(2);
}

function intFromEnv(name, fallback, { min }) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') {
    return fallback;
  }
  if (!/^\d+$/u.test(raw) || Number(raw) < min) {
    fail(`${name} must be an integer >= ${min}, got ${JSON.stringify(raw)}`);
  }
  return Number(raw);
}

const port = intFromEnv('PORT', 0, { min: 0 });
const accessTokenTTL = intFromEnv('ACCESS_TOKEN_TTL', 3600, { min: 1 });

const staticClients = [
  {
    // Confidential web client. oidc-provider lets a client registered with
    // client_secret_basic also authenticate with client_secret_post (and vice
    // versa): both are "client secret" methods to it.
    client_id: 'flow-confidential',
    client_secret: 'confidential-secret-0123456789',
    token_endpoint_auth_method: 'client_secret_basic',
    application_type: 'web',
    redirect_uris: ['http://127.0.0.1:9/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  },
  {
    // Public native client. A loopback http redirect URI registered without a
    // port matches any port (RFC 8252 section 7.3).
    client_id: 'flow-public',
    token_endpoint_auth_method: 'none',
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
  },
];

function extraClients() {
  const path = process.env.FLOW_TEST_CLIENTS;
  if (!path) {
    return [];
  }
  let parsed;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    fail(`cannot read FLOW_TEST_CLIENTS file ${path}: ${err.message}`);
  }
  if (!Array.isArray(parsed) || !parsed.every((c) => c && typeof c === 'object' && !Array.isArray(c))) {
    fail(`FLOW_TEST_CLIENTS file ${path} must hold a JSON array of objects`);
  }
  return parsed;
}

// ---------------------------------------------------------------------------
// In-memory adapter.
//
// The library's own memory adapter is an LRU capped at 1000 entries, which
// silently evicts live refresh tokens in long test runs. This one keeps one
// Map for the whole process with a much higher cap, honours expiry, and keeps
// the indexes oidc-provider needs (grant members, session uid, user code).
// ---------------------------------------------------------------------------

const MAX_ENTRIES = 100_000;

// key -> { value, expiresAt } ; expiresAt is epoch ms or Infinity
const store = new Map();

function storeGet(key) {
  const entry = store.get(key);
  if (entry === undefined) {
    return undefined;
  }
  if (entry.expiresAt <= Date.now()) {
    store.delete(key);
    return undefined;
  }
  return entry.value;
}

function storeSet(key, value, expiresAt) {
  store.delete(key); // re-insert at the end: Map iteration order is insertion order
  store.set(key, { value, expiresAt });
  if (store.size > MAX_ENTRIES) {
    const now = Date.now();
    for (const [k, entry] of store) {
      if (entry.expiresAt <= now) {
        store.delete(k);
      }
    }
    // Still full: drop the oldest entries.
    for (const k of store.keys()) {
      if (store.size <= MAX_ENTRIES) {
        break;
      }
      store.delete(k);
    }
  }
}

const GRANT_BOUND = new Set([
  'AccessToken',
  'AuthorizationCode',
  'RefreshToken',
  'DeviceCode',
  'BackchannelAuthenticationRequest',
  'PreAuthorizedCode',
]);

const grantKey = (grantId) => `grant:${grantId}`;
const uidKey = (uid) => `sessionUid:${uid}`;
const userCodeKey = (userCode) => `userCode:${userCode}`;

class MapAdapter {
  constructor(model) {
    this.model = model;
  }

  key(id) {
    return `${this.model}:${id}`;
  }

  async upsert(id, payload, expiresIn) {
    const key = this.key(id);
    const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : Infinity;

    if (this.model === 'Session' && payload.uid) {
      storeSet(uidKey(payload.uid), id, expiresAt);
    }
    if (payload.userCode) {
      storeSet(userCodeKey(payload.userCode), id, expiresAt);
    }
    if (GRANT_BOUND.has(this.model) && payload.grantId) {
      const gk = grantKey(payload.grantId);
      const members = storeGet(gk) ?? new Set();
      members.add(key);
      // Index entries never need to outlive the grant itself; keep them
      // as long as the longest member could live.
      const previous = store.get(gk)?.expiresAt ?? 0;
      storeSet(gk, members, Math.max(previous, expiresAt));
    }
    storeSet(key, payload, expiresAt);
  }

  async find(id) {
    return storeGet(this.key(id));
  }

  async findByUid(uid) {
    const id = storeGet(uidKey(uid));
    return id === undefined ? undefined : this.find(id);
  }

  async findByUserCode(userCode) {
    const id = storeGet(userCodeKey(userCode));
    return id === undefined ? undefined : this.find(id);
  }

  async consume(id) {
    const payload = storeGet(this.key(id));
    if (payload) {
      payload.consumed = Math.floor(Date.now() / 1000);
    }
  }

  async destroy(id) {
    const key = this.key(id);
    const payload = storeGet(key);
    store.delete(key);
    if (payload?.grantId) {
      storeGet(grantKey(payload.grantId))?.delete(key);
    }
  }

  async revokeByGrantId(grantId) {
    const gk = grantKey(grantId);
    const members = storeGet(gk);
    if (members) {
      for (const key of members) {
        store.delete(key);
      }
    }
    store.delete(gk);
  }
}

// ---------------------------------------------------------------------------
// Accounts: devInteractions accept any login; the login becomes the subject.
// ---------------------------------------------------------------------------

async function findAccount(_ctx, sub) {
  return {
    accountId: sub,
    async claims() {
      return {
        sub,
        name: sub,
        preferred_username: sub,
        email: `${sub}@example.test`,
        email_verified: true,
      };
    },
  };
}

// ---------------------------------------------------------------------------
// Start: bind first so the issuer can carry the actual port.
// ---------------------------------------------------------------------------

const server = http.createServer();

server.on('error', (err) => {
  fail(`HTTP server error: ${err.message}`);
});

await new Promise((resolve) => {
  server.listen(port, HOST, resolve);
});

const { port: boundPort } = server.address();
const issuer = `http://${HOST}:${boundPort}`;

const clients = [...staticClients, ...extraClients()];

let provider;
try {
  provider = new Provider(issuer, {
    adapter: MapAdapter,
    clients,
    findAccount,
    clockTolerance: 0,
    scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read'],
    claims: {
      openid: ['sub'],
      profile: ['name', 'preferred_username'],
      email: ['email', 'email_verified'],
    },
    features: {
      devInteractions: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: true },
    },
    // PKCE: S256 only and required for public clients are the library's
    // defaults; nothing to configure.
    //
    // Refresh tokens whenever the client may use them, without the
    // offline_access + prompt=consent dance, and always rotated.
    issueRefreshToken: async (_ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: {
      AccessToken: accessTokenTTL,
    },
    // Fixed cookie signing keys are not needed: every run starts fresh.
  });
} catch (err) {
  fail(`invalid provider configuration: ${describe(err)}\n${err?.stack ?? ''}`);
}

// oidc-provider validates static client metadata lazily, on first use. Load
// every client now so that a bad FLOW_TEST_CLIENTS entry fails the start-up
// instead of surfacing later as a server_error in the middle of a test.
for (const { client_id: clientId } of clients) {
  try {
    await provider.Client.find(clientId);
  } catch (err) {
    fail(`invalid client ${JSON.stringify(clientId)}: ${describe(err)}`);
  }
}

provider.on('server_error', (_ctx, err) => {
  process.stderr.write(`server.mjs: server_error: ${err.stack ?? err}\n`);
});

server.on('request', provider.callback());

let stopping = false;
function shutdown() {
  if (stopping) {
    return;
  }
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
  // Do not hang on a stuck connection.
  setTimeout(() => process.exit(0), 2000).unref();
}

process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);

// Orphan guard: the Python harness keeps our stdin open and sets this variable,
// so if the test process dies without stopping us (SIGKILL, crash), stdin hits
// EOF and the server goes away instead of lingering on its port.
if (process.env.FLOW_EXIT_ON_STDIN_EOF === '1') {
  process.stdin.on('end', shutdown);
  process.stdin.on('error', shutdown);
  process.stdin.resume();
}

process.stdout.write(`READY ${issuer}\n`);
