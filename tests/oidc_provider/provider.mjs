// An independent, OpenID Certified provider for the gateway's tests: panva's oidc-provider with a tiny config.
// Environment: CLIENT_ID, CLIENT_SECRET, REDIRECT_URIS, POST_LOGOUT_REDIRECT_URIS, BACKCHANNEL_LOGOUT_URI.
// Listens on 127.0.0.1 (port 0 = any) and prints "OIDC READY <issuer>" once it serves.
import http from 'node:http';
import { createPrivateKey, generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const env = process.env;
const list = (value) => (value || '').split(',').filter(Boolean);
// PKCS#8 PEM first, then JWK: exporting straight to JWK sometimes hangs on Node 20 (see testing recipes).
const { privateKey } = generateKeyPairSync('rsa', {
  modulusLength: 2048,
  privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  publicKeyEncoding: { type: 'spki', format: 'pem' },
});
const jwk = { ...createPrivateKey(privateKey).export({ format: 'jwk' }), kid: 'oidc-test-key', use: 'sig', alg: 'RS256' };

const server = http.createServer();
server.listen(Number(env.PORT || 0), '127.0.0.1', () => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const client = {
    client_id: env.CLIENT_ID,
    client_secret: env.CLIENT_SECRET,
    redirect_uris: list(env.REDIRECT_URIS),
    post_logout_redirect_uris: list(env.POST_LOGOUT_REDIRECT_URIS),
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  };
  if (env.BACKCHANNEL_LOGOUT_URI) {
    client.backchannel_logout_uri = env.BACKCHANNEL_LOGOUT_URI;
    client.backchannel_logout_session_required = true;
  }
  const provider = new Provider(issuer, {
    clients: [client],
    jwks: { keys: [jwk] },
    cookies: { keys: ['gateway-tests-only'] },
    conformIdTokenClaims: false, // email, name, preferred_username in the ID token, as Entra does
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
    // The gateway under test listens on 127.0.0.1, which the default SSRF guard refuses for back-channel calls.
    fetch: (url, options) => { delete options.dispatcher; return globalThis.fetch(url, options); },
    features: { devInteractions: { enabled: true }, backchannelLogout: { enabled: true } },
    findAccount: async (_ctx, id) => ({
      accountId: id,
      async claims() {
        return { sub: id, email: `${id}@example.net`, email_verified: true, name: `User ${id}`, preferred_username: id };
      },
    }),
  });
  provider.on('backchannel.error', (_ctx, err, clientId) => console.log(`backchannel.error ${err} ${err && err.cause}`));
  provider.on('backchannel.success', (_ctx, clientId) => console.log(`backchannel.success ${clientId}`));
  provider.on('server_error', (_ctx, err) => console.log(`server_error ${err}`));
  server.on('request', provider.callback());
  console.log(`OIDC READY ${issuer}`);
});
