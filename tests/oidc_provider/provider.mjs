// A real OpenID Provider (the certified `oidc-provider` from the npm registry) on
// loopback, for tests/oidc_interop.rs. Configured from the environment:
//
//   PORT                    port to listen on (127.0.0.1)
//   CLIENT_ID, CLIENT_SECRET the API's client; also the `aud` of its access tokens
//   BACKCHANNEL_LOGOUT_URI  where the provider sends logout tokens
//   KEYS_DIR, KEY_IDS       optional: the signing keys, RS256, one per `kid` of the
//                           comma-separated KEY_IDS (the first signs), each kept in
//                           KEYS_DIR/<kid>.json and made there on first use. Restarted
//                           with another first kid, the provider has rotated its key.
//                           Without them, oidc-provider's development key.
//
// It issues RFC 9068 access tokens (`typ: at+jwt`, RS256) by the client-credentials
// grant, publishes discovery and JWKS, and sends OpenID Connect Back-Channel Logout
// tokens with its own machinery (`Client#backchannelLogout`, what `end_session` calls
// for every client of an ending session). A test asks for one with
// `POST /test/backchannel-logout?sub=...`, since a client-credentials grant has no
// browser session to end. Prints `listening on ISSUER` once it accepts connections.
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const clientId = process.env.CLIENT_ID;
const clientSecret = process.env.CLIENT_SECRET;
const backchannelLogoutUri = process.env.BACKCHANNEL_LOGOUT_URI;
if (!port || !clientId || !clientSecret || !backchannelLogoutUri) {
  console.error('PORT, CLIENT_ID, CLIENT_SECRET and BACKCHANNEL_LOGOUT_URI are required');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const resource = 'urn:tower-jwt-revoke:api';

// The signing keys, when the test chooses them (a rotation across restarts).
function signingKeys(dir, kids) {
  return kids.map((kid) => {
    const file = path.join(dir, `${kid}.json`);
    if (!fs.existsSync(file)) {
      const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
      const jwk = { ...privateKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' };
      fs.writeFileSync(file, JSON.stringify(jwk));
    }
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  });
}
const keyIds = (process.env.KEY_IDS ?? '').split(',').filter(Boolean);
const jwks = process.env.KEYS_DIR && keyIds.length
  ? { keys: signingKeys(process.env.KEYS_DIR, keyIds) }
  : undefined;

const provider = new Provider(issuer, {
  ...(jwks ? { jwks } : {}),
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    backchannel_logout_uri: backchannelLogoutUri,
    // The access tokens of a client-credentials grant carry no `sid`: log out by `sub`.
    backchannel_logout_session_required: false,
  }],
  scopes: ['api'],
  // The provider refuses to call special-use addresses (an SSRF guard); the API under
  // test is on loopback, so outgoing requests here go without that dispatcher.
  fetch: (url, options) => {
    const { dispatcher, ...rest } = options;
    return globalThis.fetch(url, rest);
  },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    backchannelLogout: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'api',
        audience: clientId,
        accessTokenTTL: 300,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'RS256', ...(jwks ? { kid: keyIds[0] } : {}) } },
      }),
    },
  },
});

const callback = provider.callback();
const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  if (req.method === 'POST' && url.pathname === '/test/backchannel-logout') {
    try {
      const client = await provider.Client.find(clientId);
      await client.backchannelLogout(url.searchParams.get('sub'), url.searchParams.get('sid') ?? undefined);
      res.writeHead(204).end();
    } catch (error) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`${error}${error.cause ? `: ${error.cause}` : ''}`);
    }
    return;
  }
  callback(req, res);
});
server.listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => server.close(() => process.exit(0)));
