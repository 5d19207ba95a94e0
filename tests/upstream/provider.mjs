// An independent OpenID provider for the OIDC social connector's tests: panva's oidc-provider
// (a certified OpenID Connect implementation, nothing of idledger's), with its development
// sign-in and consent pages (any login, any password; the login becomes the subject).
//
// Started by tests/api/social_oidc_provider.rs (and, through it, the browser test) as
//   node tests/upstream/provider.mjs '<settings as JSON>'
// with settings {redirectUri, accessTokenTtl?, host?}. It listens on an ephemeral port of `host`
// (127.0.0.1 by default; another loopback address keeps a browser's cookies apart from idledger's)
// and prints one JSON line: {issuer, clients: {<auth method>: {clientId, clientSecret}}}.
// It stops when its standard input closes, so it never outlives the test that started it.

import { randomBytes } from 'node:crypto';
import http from 'node:http';

import { generateKeyPair, exportJWK } from 'jose';
import Provider from 'oidc-provider';

const settings = JSON.parse(process.argv[2] ?? '{}');
if (!settings.redirectUri) {
  console.error('usage: provider.mjs \'{"redirectUri": "..."}\'');
  process.exit(2);
}

const secret = () => randomBytes(32).toString('base64url');

// One client per token endpoint authentication method the connector offers.
const methods = {
  client_secret_basic: {},
  client_secret_post: {},
  client_secret_jwt: { token_endpoint_auth_signing_alg: 'HS384' },
};
const clients = Object.entries(methods).map(([method, extra]) => ({
  client_id: `idledger-${method.replaceAll('_', '-')}`,
  client_secret: secret(),
  redirect_uris: [settings.redirectUri],
  grant_types: ['authorization_code', 'refresh_token'],
  response_types: ['code'],
  token_endpoint_auth_method: method,
  ...extra,
}));

const { privateKey } = await generateKeyPair('RS256', { extractable: true });
const signing = { ...(await exportJWK(privateKey)), kid: `rsa-${secret().slice(0, 8)}`, alg: 'RS256', use: 'sig' };

const account = (sub) => ({
  accountId: sub,
  claims: () => ({
    sub,
    name: `${sub} upstream`,
    picture: `https://img.upstream.example/${sub}.png`,
    email: `${sub}@upstream.example`,
    email_verified: true,
  }),
});

let handle = (_request, response) => {
  response.statusCode = 503;
  response.end();
};
const server = http.createServer((request, response) => handle(request, response));
const host = settings.host ?? '127.0.0.1';
server.listen(0, host, () => {
  const issuer = `http://${host}:${server.address().port}`;
  const provider = new Provider(issuer, {
    clients,
    jwks: { keys: [signing] },
    findAccount: (_ctx, sub) => account(sub),
    claims: {
      openid: ['sub'],
      profile: ['name', 'picture'],
      email: ['email', 'email_verified'],
    },
    scopes: ['openid', 'offline_access', 'profile', 'email'],
    // Logto's connector reads the person from the ID token, not from userinfo.
    conformIdTokenClaims: false,
    enabledJWA: {
      clientAuthSigningAlgValues: ['HS256', 'HS384', 'HS512'],
    },
    features: { devInteractions: { enabled: true } },
    cookies: { keys: [secret()] },
    ttl: {
      AccessToken: settings.accessTokenTtl ?? 3600,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 86400,
      Grant: 86400,
      Interaction: 600,
      Session: 86400,
    },
  });
  // Only what a failure means goes to stderr; the development pages' warnings do not.
  provider.on('server_error', (_ctx, error) => console.error('server_error', error));
  handle = provider.callback();
  const described = Object.fromEntries(
    clients.map((c) => [c.token_endpoint_auth_method, { clientId: c.client_id, clientSecret: c.client_secret }]),
  );
  process.stdout.write(`${JSON.stringify({ issuer, clients: described })}\n`);
});

process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
