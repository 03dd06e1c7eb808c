// Auth providers: token sources, and OAuth2 client credentials against a small local identity provider
// (an HTTP stand-in for the IdP, not a broker): discovery, caching, refresh, refusal without leaking the secret.
import assert from "node:assert/strict";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { oauth2ClientCredentials, tokenAuth } from "../../src/pulsar/auth";
import { AuthenticationError, ConfigError } from "../../src/pulsar/errors";

test("token sources: value, file (re-read, so rotation works), environment; empty is a ConfigError", async () => {
  assert.equal((await tokenAuth({ token: " abc " }).getAuthData()).toString(), "abc");
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "tok-")), "t");
  fs.writeFileSync(file, "first\n");
  const fromFile = tokenAuth({ file });
  assert.equal((await fromFile.getAuthData()).toString(), "first");
  fs.writeFileSync(file, "second\n");
  assert.equal((await fromFile.getAuthData()).toString(), "second");
  process.env.TEST_PULSAR_TOKEN = "from-env";
  assert.equal((await tokenAuth({ env: "TEST_PULSAR_TOKEN" }).getAuthData()).toString(), "from-env");
  assert.throws(() => tokenAuth({}), ConfigError);
  assert.throws(() => tokenAuth({ file: "/no/such/file" }), /cannot read the token file/);
});

test("OAuth2 client credentials: discovery once, form post, cache, refresh before expiry, clear refusal", async (t) => {
  let issued = 0;
  let discoveries = 0;
  let lifetime = 3600;
  const bodies: string[] = [];
  const server = http.createServer((req, res) => {
    if (req.url === "/.well-known/openid-configuration") {
      discoveries++;
      res.setHeader("content-type", "application/json");
      res.end(
        JSON.stringify({
          token_endpoint: `http://127.0.0.1:${(server.address() as { port: number }).port}/token`,
        }),
      );
      return;
    }
    let body = "";
    req.on("data", (d: Buffer) => (body += d.toString()));
    req.on("end", () => {
      bodies.push(body);
      const form = new URLSearchParams(body);
      res.setHeader("content-type", "application/json");
      if (form.get("client_secret") !== "s3cret") {
        res.statusCode = 401;
        res.end(JSON.stringify({ error: "invalid_client", error_description: "bad credentials" }));
        return;
      }
      issued++;
      res.end(JSON.stringify({ access_token: `tok-${issued}`, expires_in: lifetime, token_type: "Bearer" }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  t.after(() => server.close());
  const issuerUrl = `http://127.0.0.1:${(server.address() as { port: number }).port}`;

  const auth = oauth2ClientCredentials({
    issuerUrl,
    clientId: "bridge",
    clientSecret: "s3cret",
    audience: "urn:pulsar",
    scope: "produce",
  });
  assert.equal(auth.methodName, "token");
  const [a, b] = await Promise.all([auth.getAuthData(), auth.getAuthData()]);
  assert.equal(a.toString(), "tok-1");
  assert.equal(b.toString(), "tok-1", "concurrent callers share one request");
  assert.equal(issued, 1);
  const form = new URLSearchParams(bodies[0]);
  assert.equal(form.get("grant_type"), "client_credentials");
  assert.equal(form.get("audience"), "urn:pulsar");
  assert.equal(form.get("scope"), "produce");

  lifetime = 0; // the next token expires at once, so the one after it is fetched again
  const short = oauth2ClientCredentials({ issuerUrl, clientId: "bridge", clientSecret: "s3cret" });
  assert.equal((await short.getAuthData()).toString(), "tok-2");
  assert.equal((await short.getAuthData()).toString(), "tok-3", "refreshed when expired");
  assert.equal(discoveries, 2, "the token endpoint is discovered once per provider, not at each refresh");

  const refused = oauth2ClientCredentials({
    issuerUrl,
    clientId: "bridge",
    clientSecret: "wrong-secret-value",
  });
  await assert.rejects(refused.getAuthData(), (e: unknown) => {
    assert.ok(e instanceof AuthenticationError);
    assert.match(e.message, /invalid_client/);
    assert.doesNotMatch(e.message, /wrong-secret-value/);
    return true;
  });
  assert.throws(() => oauth2ClientCredentials({ issuerUrl, clientId: "", clientSecret: "" }), ConfigError);
});
