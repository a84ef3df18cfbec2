// stream-js 8.x realtime, unchanged, under Node against `stream-gateway --emulator`: a
// frontend's client (api key, no secret, app id) gets a read token for `timeline:js8rt` from
// the gateway's `POST /tokens`, `feed.subscribe`s over Faye where `LOCAL_FAYE` points it
// (http://localhost:9999/faye/, the emulator's `emulator.realtime_listen`), and receives the
// activity stream-python then adds through the gateway to `user:js8rt`, which the timeline
// follows (fan-out). Two such clients: one on Faye's default transport (WebSocket), one with
// WebSocket disabled (long-polling, what clients behind some proxies fall back to). A third,
// holding another feed's token, must be refused. Fails on a refused subscription, a taken
// one, or nothing received in 10 s.
//
//   LOCAL_FAYE=1 GATEWAY_PORT=8080 COMPAT_PYTHON=python3 [COMPAT_TOKENS_URL=...] node tests/compat/js8_realtime.cjs
'use strict';

const path = require('path');
const { execFileSync } = require('child_process');
const stream = require('getstream');
const { version } = require('getstream/package.json');

const PORT = Number(process.env.GATEWAY_PORT);

function fail(what) {
  console.error(`js8 realtime: FAIL ${what}`);
  process.exit(1);
}

function within(ms, promise, what) {
  return Promise.race([
    promise,
    new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: nothing in ${ms} ms`)), ms)),
  ]);
}

// A read token for `feed` from the gateway, with the app's api key and app id.
async function token(url, feed) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ feed, resource: 'feed', action: 'read' }),
  });
  const grant = await r.json();
  if (r.status !== 200) fail(`POST /tokens: ${r.status} ${JSON.stringify(grant)}`);
  return grant;
}

// A frontend's client subscribed to the timeline: the client, the feed, the first message.
async function subscriber(grant, longPolling) {
  const client = stream.connect(grant.api_key, null, grant.app_id);
  if (client.fayeUrl !== 'http://localhost:9999/faye/') fail(`LOCAL_FAYE url: ${client.fayeUrl}`);
  if (longPolling) client.getFayeClient().disable('websocket');
  const feed = client.feed('timeline', 'js8rt', grant.token);
  let received;
  const message = new Promise((resolve) => { received = resolve; });
  await within(10000, feed.subscribe((m) => received(m)), 'feed.subscribe')
    .catch((e) => fail(`feed.subscribe: ${e.message || JSON.stringify(e)}`));
  return { client, feed, message };
}

async function main() {
  if (!version.startsWith('8.')) fail(`getstream 8.x, got ${version}`);
  if (!process.env.LOCAL_FAYE) fail('LOCAL_FAYE must be set: it points stream-js at the emulator');
  // COMPAT_TOKENS_URL: where POST /tokens is served, when not on the gateway's port.
  const tokensUrl = process.env.COMPAT_TOKENS_URL || `http://127.0.0.1:${PORT}/tokens`;
  const grant = await token(tokensUrl, 'timeline:js8rt');
  const subs = [await subscriber(grant, false), await subscriber(grant, true)];

  // Another feed's read token is refused: the subscription's promise rejects.
  const other = await token(tokensUrl, 'timeline:js8other');
  const stranger = stream.connect(other.api_key, null, other.app_id);
  const refused = await within(10000,
    stranger.feed('timeline', 'js8rt', other.token).subscribe(() => {}).then(() => false, () => true),
    'a refused feed.subscribe');
  if (!refused) fail('feed.subscribe with another feed\'s token was taken');
  stranger.getFayeClient().disconnect();

  // stream-python adds the activity through the gateway.
  execFileSync(process.env.COMPAT_PYTHON, [path.join(__dirname, 'python5_realtime.py')], {
    env: { ...process.env, COMPAT_API_KEY: grant.api_key },
    stdio: 'inherit',
  });

  const transports = [];
  for (const s of subs) {
    const m = await within(10000, s.message, 'realtime message').catch((e) => fail(e.message));
    const ok = m.feed === 'timeline:js8rt' && String(m.app_id) === String(grant.app_id)
      && m.new.length === 1 && m.new[0].object === 'rt:1' && m.new[0].origin === 'user:js8rt'
      && Array.isArray(m.deleted) && typeof m.published_at === 'string';
    if (!ok) fail(`the message: ${JSON.stringify(m)}`);
    const faye = s.client.getFayeClient();
    // Which Faye transport carried it (a private field of Faye's, for the log line only).
    transports.push((faye._dispatcher && faye._dispatcher.connectionType) || 'unknown');
    s.feed.unsubscribe();
    faye.disconnect();
  }
  console.log(`js8 realtime: ok, feed.subscribe received the activity over ${transports.join(' and ')} (getstream ${version})`);
  process.exit(0);
}

main().catch((e) => fail(e.stack || String(e)));
