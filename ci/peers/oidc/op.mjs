// Local OpenID provider for the fedprobe peers: panva/oidc-provider (a certified OP) over TLS.
//
// - one confidential client (client_secret_basic) allowed to use client_credentials,
//   authorization_code and refresh_token;
// - access tokens are RS256 JWTs (typ at+jwt, aud "keystone") through resourceIndicators, so
//   Apache mod_auth_openidc can validate them offline against /jwks;
// - a minimal, scriptable login: POST /interaction/<uid>/login with login + password (one test
//   user, password from a file) finishes login and consent at once (see oidc_login.py).
//
// Environment: OP_ISSUER, OP_PORT, OP_TLS_KEY, OP_TLS_CERT, OP_CLIENT_ID, OP_CLIENT_SECRET_FILE,
// OP_USER, OP_USER_PASSWORD_FILE, OP_REDIRECT_URI.
import Provider from 'oidc-provider';
import https from 'node:https';
import fs from 'node:fs';
import crypto from 'node:crypto';

const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`missing env ${k}`);
  return v;
};
const ISS = env('OP_ISSUER');
const PORT = Number(env('OP_PORT'));
const CLIENT_ID = env('OP_CLIENT_ID');
const CLIENT_SECRET = fs.readFileSync(env('OP_CLIENT_SECRET_FILE'), 'utf8').trim();
const USER = env('OP_USER');
const USER_PASSWORD = fs.readFileSync(env('OP_USER_PASSWORD_FILE'), 'utf8').trim();
const REDIRECT_URI = env('OP_REDIRECT_URI');
const RESOURCE = 'https://keystone.fedprobe.test/';
const SCOPES = ['openid', 'offline_access', 'email', 'profile', 'eduperson_entitlement'];
const ENTITLEMENTS = [
  'urn:mace:egi.eu:group:vo.access.egi.eu:role=member#aai.egi.eu',
  'urn:mace:egi.eu:group:ops.vo.example:role=member#aai.egi.eu',
];

// fresh signing key at every start (never the library's published development keys)
const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: crypto.randomUUID() };

const provider = new Provider(ISS, {
  jwks: { keys: [jwk] },
  cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    grant_types: ['client_credentials', 'authorization_code', 'refresh_token'],
    response_types: ['code'],
    redirect_uris: [REDIRECT_URI],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  scopes: SCOPES,
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
    eduperson_entitlement: ['eduperson_entitlement'],
  },
  async findAccount(_ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id, email: `${id}@fedprobe.test`, email_verified: true, name: `Probe ${id}`,
          preferred_username: id, eduperson_entitlement: ENTITLEMENTS,
        };
      },
    };
  },
  async extraTokenClaims(_ctx, token) {
    // visible to mod_auth_openidc (OIDC-eduperson_entitlement header) like EGI Check-in's claims
    return token.accountId ? { eduperson_entitlement: ENTITLEMENTS } : undefined;
  },
  rotateRefreshToken: () => false, // the refresh token written by up.sh stays usable for the whole test run
  ttl: {
    AccessToken: 3600, ClientCredentials: 3600, RefreshToken: 14 * 24 * 3600,
    AuthorizationCode: 120, Grant: 14 * 24 * 3600, Interaction: 600, Session: 3600, IdToken: 3600,
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => RESOURCE,
      getResourceServerInfo: () => ({
        scope: 'openid email profile eduperson_entitlement',
        audience: 'keystone',
        accessTokenFormat: 'jwt',
        accessTokenTTL: 3600,
        jwt: { sign: { alg: 'RS256' } },
      }),
      useGrantedResource: () => true,
    },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
});
provider.proxy = false;

function readBody(req) {
  return new Promise((resolve, reject) => {
    let b = '';
    req.on('data', (c) => { b += c; if (b.length > 65536) reject(new Error('body too large')); });
    req.on('end', () => resolve(new URLSearchParams(b)));
    req.on('error', reject);
  });
}

function send(res, code, text) {
  res.writeHead(code, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(text);
}

async function interaction(req, res) {
  const m = req.url.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/login)?(\?.*)?$/);
  if (!m) return send(res, 404, 'not found');
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET' && !m[2]) {
    return send(res, 200, `<!doctype html><title>fedprobe test OP</title>
<form method="post" action="/interaction/${details.uid}/login">
<p>prompt: ${details.prompt.name}</p>
<input name="login" placeholder="login"> <input name="password" type="password" placeholder="password">
<button type="submit">Sign in and allow</button></form>`);
  }
  if (req.method !== 'POST' || !m[2]) return send(res, 405, 'method not allowed');
  const form = await readBody(req);
  let accountId = details.session?.accountId;
  if (details.prompt.name === 'login' || !accountId) {
    if (form.get('login') !== USER || form.get('password') !== USER_PASSWORD) {
      return send(res, 401, 'invalid login or password');
    }
    accountId = USER;
  }
  const { params } = details;
  let grant = details.grantId ? await provider.Grant.find(details.grantId) : undefined;
  if (!grant) grant = new provider.Grant({ accountId, clientId: params.client_id });
  grant.addOIDCScope(String(params.scope || 'openid'));
  grant.addResourceScope(RESOURCE, 'openid email profile eduperson_entitlement');
  const d = details.prompt.details || {};
  if (d.missingOIDCClaims) grant.addOIDCClaims(d.missingOIDCClaims);
  if (d.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(d.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const grantId = await grant.save();
  const result = { login: { accountId }, consent: { grantId } };
  return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
}

const callback = provider.callback();
const server = https.createServer(
  { key: fs.readFileSync(env('OP_TLS_KEY')), cert: fs.readFileSync(env('OP_TLS_CERT')) },
  (req, res) => {
    if (req.url.startsWith('/interaction/')) {
      interaction(req, res).catch((err) => {
        console.error('interaction error', err);
        if (!res.headersSent) send(res, 400, `interaction error: ${err.message}`);
      });
      return;
    }
    callback(req, res);
  },
);
provider.on('server_error', (_ctx, err) => console.error('server_error', err));
provider.on('grant.error', (_ctx, err) => console.error('grant.error', err.message, err.error_description || ''));
server.listen(PORT, '127.0.0.1', () => console.log(`oidc-provider ${ISS} listening on 127.0.0.1:${PORT}`));
