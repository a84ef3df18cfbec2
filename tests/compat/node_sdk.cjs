// Stream's Node server SDK for Chat, Video and Feeds v3 (npm @stream-io/node-sdk), unchanged,
// holding the app's api key and a WRONG secret, through the gateway (stream.v2 = true) against
// tests/compat/fake_v2.py, which checks every call is signed with the real secret. Exits 1 on any
// call that rejects.
'use strict';
const { StreamClient } = require('@stream-io/node-sdk');

const client = new StreamClient(process.env.COMPAT_V2_KEY, 'a-wrong-secret-the-gateway-replaces', {
  basePath: `http://127.0.0.1:${process.env.GATEWAY_V2_PORT}`,
});
const channel = client.chat.channel('messaging', 'general');
const call = client.video.call('default', 'c1');
const feed = client.feeds.feed('user', 'u1');

const calls = [
  ['common.UpdateUsers', () => client.upsertUsers([{ id: 'u1', name: 'One' }])],
  ['common.QueryUsers', () => client.queryUsers({ payload: { filter_conditions: { id: 'u1' } } })],
  ['common.GetApp', () => client.getApp()],
  ['chat.GetOrCreateChannel', () => channel.getOrCreate({ data: { created_by_id: 'u1' } })],
  ['chat.SendMessage', () => channel.sendMessage({ message: { text: 'hi', user_id: 'u1' } })],
  ['chat.QueryChannels', () => client.chat.queryChannels({ filter_conditions: { type: 'messaging' } })],
  ['chat.MarkRead', () => channel.markRead({ user_id: 'u1' })],
  ['video.GetOrCreateCall', () => call.getOrCreate({ data: { created_by_id: 'u1' } })],
  ['video.GetCall', () => call.get()],
  ['feeds.AddActivity', () => client.feeds.addActivity({ type: 'post', feeds: ['user:u1'], text: 'hi', user_id: 'u1' })],
  ['feeds.GetOrCreateFeed', () => feed.getOrCreate({ user_id: 'u1' })],
  ['feeds.Follow', () => client.feeds.follow({ source: 'timeline:u1', target: 'user:u2' })],
];

(async () => {
  let failed = 0;
  for (const [name, f] of calls) {
    try {
      await f();
      console.log(`  ok   ${name}`);
    } catch (e) {
      failed += 1;
      console.log(`  FAIL ${name}: ${e && e.message}`);
    }
  }
  console.log(`node-sdk: ${calls.length - failed}/${calls.length} calls ok`);
  process.exit(failed ? 1 : 0);
})();
