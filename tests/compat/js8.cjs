// stream-js 8.x (npm `getstream`), unchanged, under Node against the gateway: the server-side
// client's calls for every endpoint the gateway serves. The client holds the app's api key and
// a wrong secret; the gateway drops its credentials (stream-js sends `*` tokens for everything)
// and signs each call with its narrowest scope. Any rejected call fails the run.
//
//   GATEWAY_PORT=8080 COMPAT_API_KEY=<the gateway's api key> node tests/compat/js8.cjs
'use strict';

const stream = require('getstream');
const { version } = require('getstream/package.json');

const PORT = Number(process.env.GATEWAY_PORT);
const calls = [];

async function call(name, fn) {
  try {
    const r = await fn();
    calls.push(name);
    return r;
  } catch (e) {
    const detail = e && e.error ? JSON.stringify(e.error) : String(e);
    console.error(`js8: FAIL ${name}: ${detail}`);
    process.exit(1);
  }
}

function check(cond, what) {
  if (!cond) {
    console.error(`js8: FAIL ${what}`);
    process.exit(1);
  }
}

async function main() {
  check(version.startsWith('8.'), `getstream 8.x, got ${version}`);
  // The app's api key (public) and a wrong secret.
  const client = stream.connect(process.env.COMPAT_API_KEY, 'not-the-secret', '1', {
    urlOverride: { api: `http://127.0.0.1:${PORT}/api/` },
  });
  const user = client.feed('user', 'js8');
  const timeline = client.feed('timeline', 'js8');
  const t0 = '2026-11-27T10:00:00.000000';

  // Feeds.
  const a = await call('feed.addActivity', () =>
    user.addActivity({ actor: 'user:js8', verb: 'post', object: 'js-post:1', foreign_id: 'js-post:1', time: t0, to: ['notification:js8'] }));
  await call('feed.addActivities', () =>
    user.addActivities([
      { actor: 'user:js8', verb: 'post', object: 'js-post:2', foreign_id: 'js-post:2', time: '2026-11-27T10:01:00.000000' },
      { actor: 'user:js8', verb: 'like', object: 'js-post:9' },
    ]));
  const page = await call('feed.get', () => user.get({ limit: 5 }));
  check(page.results.length === 3, `three activities read back: ${JSON.stringify(page)}`);
  await call('feed.get(enrich)', () => user.get({ limit: 2, enrich: true, withReactionCounts: true, withOwnReactions: true }));
  const one = await call('feed.getActivityDetail', () => user.getActivityDetail(a.id));
  check(one.results.length === 1 && one.results[0].id === a.id, `activity detail: ${JSON.stringify(one)}`);

  await call('feed.follow', () => timeline.follow('user', 'js8', { limit: 10 }));
  await call('feed.following', () => timeline.following({ filter: ['user:js8'] }));
  await call('feed.followers', () => user.followers({ limit: 10 }));
  await call('feed.followStats', () => user.followStats({ followerSlugs: ['timeline'] }));
  await call('feed.updateActivityToTargets', () =>
    user.updateActivityToTargets('js-post:1', t0, undefined, ['notification:other'], undefined));
  await call('feed.unfollow', () => timeline.unfollow('user', 'js8', { keepHistory: true }));
  await call('feed.removeActivity(id)', () => user.removeActivity(a.id));
  await call('feed.removeActivity(foreign_id)', () => user.removeActivity({ foreignId: 'js-post:2' }));

  // App-level calls.
  await call('client.addToMany', () =>
    client.addToMany({ actor: 'app', verb: 'announce', object: 'release:1', foreign_id: 'js-release:1', time: t0 }, ['user:a', 'user:b']));
  await call('client.followMany', () =>
    client.followMany([{ source: 'timeline:a', target: 'user:a' }, { source: 'timeline:b', target: 'user:b' }], 5));
  await call('client.unfollowMany', () =>
    client.unfollowMany([{ source: 'timeline:a', target: 'user:a' }, { source: 'timeline:b', target: 'user:b', keep_history: true }]));
  const act = { actor: 'user:js8', verb: 'post', object: 'js-post:3', foreign_id: 'js-post:3', time: t0 };
  await call('feed.addActivity', () => user.addActivity(act));
  await call('client.updateActivities', () => client.updateActivities([{ ...act, popularity: 5 }]));
  await call('client.updateActivity', () => client.updateActivity({ ...act, popularity: 6 }));
  const got = await call('client.getActivities(foreignIDTimes)', () =>
    client.getActivities({ foreignIDTimes: [{ foreignID: 'js-post:3', time: t0 }] }));
  check(got.results[0].popularity === 6, `update reached the activity: ${JSON.stringify(got)}`);
  const aid = got.results[0].id;
  await call('client.getActivities(ids)', () => client.getActivities({ ids: [aid] }));
  await call('client.getActivities(enrich)', () => client.getActivities({ ids: [aid], enrich: true, withReactionCounts: true }));
  await call('client.activityPartialUpdate(id)', () =>
    client.activityPartialUpdate({ id: aid, set: { 'product.price': 10 }, unset: ['popularity'] }));
  await call('client.activityPartialUpdate(foreign_id)', () =>
    client.activityPartialUpdate({ foreign_id: 'js-post:3', time: t0, set: { verb: 'edit' } }));
  await call('client.activitiesPartialUpdate', () => client.activitiesPartialUpdate([{ id: aid, set: { n: 1 } }]));
  const after = await call('client.getActivities(ids)', () => client.getActivities({ ids: [aid] }));
  check(after.results[0].product.price === 10 && after.results[0].n === 1, JSON.stringify(after));
  await call('client.og', () => client.og('https://getstream.io'));
  const logs = await call('auditLogs.filter', () =>
    client.auditLogs.filter({ entity_type: 'activity', entity_id: aid, limit: 5 }));
  check(logs.audit_logs.length > 0 && logs.audit_logs.every((l) => l.entity_id === aid), `audit logs: ${JSON.stringify(logs)}`);

  // Reactions.
  const r = await call('reactions.add', () =>
    client.reactions.add('like', aid, { n: 1 }, { userId: 'bob', targetFeeds: ['notification:bob'] }));
  const child = await call('reactions.addChild', () => client.reactions.addChild('comment', r, { text: 'hi' }, { userId: 'amy' }));
  await call('reactions.get', () => client.reactions.get(r.id));
  await call('reactions.update', () => client.reactions.update(r.id, { n: 2 }));
  const f = await call('reactions.filter(activity_id)', () => client.reactions.filter({ activity_id: aid, limit: 5 }));
  check(f.results.length === 2, JSON.stringify(f));
  await call('reactions.filter(kind)', () => client.reactions.filter({ activity_id: aid, kind: 'like' }));
  await call('reactions.filter(user_id)', () => client.reactions.filter({ user_id: 'bob' }));
  await call('reactions.filter(reaction_id)', () => client.reactions.filter({ reaction_id: r.id }));

  // Enriched reads with reactions: feed and activities.
  const rich = await call('feed.get(enrich, reactions)', () =>
    user.get({ withOwnReactions: true, withRecentReactions: true, withReactionCounts: true, withUserId: 'bob' }));
  const mine = rich.results.find((x) => x.id === aid);
  check(mine && mine.reaction_counts.like === 1 && mine.latest_reactions.like[0].id === r.id
    && mine.own_reactions.like[0].id === r.id, `enriched feed: ${JSON.stringify(rich)}`);
  const kinds = await call('client.getActivities(reactions, kinds)', () =>
    client.getActivities({ ids: [aid], reactions: { recent: true, counts: true, kinds: 'comment' } }));
  check(JSON.stringify(kinds.results[0].reaction_counts) === '{}', `kinds filter: ${JSON.stringify(kinds)}`);

  // Aggregated and notification feeds (Stream's default groups `aggregated`, `notification`).
  const agg = client.feed('aggregated', 'js8');
  await call('feed.follow(aggregated)', () => agg.follow('user', 'js8'));
  const groups = (await call('feed.get(aggregated)', () => agg.get({ limit: 5 }))).results;
  check(groups.length > 0 && groups[0].activity_count === groups[0].activities.length && groups[0].group,
    `aggregated: ${JSON.stringify(groups)}`);
  const notif = client.feed('notification', 'js8n');
  await call('feed.addActivity(notification)', () => notif.addActivity({ actor: 'user:x', verb: 'follow', object: 'o:1' }));
  await call('feed.addActivity(notification)', () => notif.addActivity({ actor: 'user:x', verb: 'like', object: 'o:2' }));
  const first = await call('feed.get(notification)', () => notif.get());
  check(first.unseen === 2 && first.unread === 2 && first.results[0].is_seen === false, `notification: ${JSON.stringify(first)}`);
  await call('feed.get(mark_seen)', () => notif.get({ mark_seen: true }));
  await call('feed.get(mark_read)', () => notif.get({ mark_read: [first.results[0].id] }));
  const last = await call('feed.get(notification)', () => notif.get());
  check(last.unseen === 0 && last.unread === 1 && last.results[0].is_read === true, `marked: ${JSON.stringify(last)}`);

  await call('reactions.delete', () => client.reactions.delete(child.id));
  await call('reactions.delete', () => client.reactions.delete(r.id));

  // Collections.
  await call('collections.upsert', () => client.collections.upsert('food', [{ id: '1', name: 'pizza' }, { id: '2', name: 'pasta' }]));
  await call('collections.upsertMany', () => client.collections.upsertMany({ drinks: [{ id: 'tea', hot: true }] }));
  const sel = await call('collections.select', () => client.collections.select('food', ['1', '2']));
  check(sel.response.data.length === 2, JSON.stringify(sel));
  await call('collections.add', () => client.collections.add('food', '3', { name: 'soup' }));
  await call('collections.get', () => client.collections.get('food', '3'));
  await call('collections.update', () => client.collections.update('food', '3', { name: 'stew' }));
  await call('collections.delete', () => client.collections.delete('food', '3'));
  await call('collections.deleteMany', () => client.collections.deleteMany('food', ['1', '2']));

  // Users.
  await call('user.create', () => client.user('bob').create({ name: 'Bob' }));
  await call('user.getOrCreate', () => client.user('bob').getOrCreate({ name: 'Bob' }));
  await call('user.get', () => client.user('bob').get({ with_follow_counts: true }));
  const u = await call('user.update', () => client.user('bob').update({ name: 'Robert' }));
  check(u.data.name === 'Robert', JSON.stringify(u.data));
  await call('user.delete', () => client.user('bob').delete());
  await call('client.addUsers', () => client.addUsers([{ id: 'amy', data: { n: 1 } }, { id: 'cy', data: {} }], false));
  const users = await call('client.getUsers', () => client.getUsers(['amy', 'cy']));
  check(users.users.length === 2, JSON.stringify(users));
  await call('client.deleteUsers', () => client.deleteUsers(['amy', 'cy']));

  // Numbers where Stream takes strings, and a time as toISOString() sends it (with `Z`).
  const nums = client.feed('user', 'js8nums');
  const n = await call('feed.addActivity(numbers)', () =>
    nums.addActivity({ actor: 1, verb: 'tweet', object: 3, foreign_id: 7, time: new Date().toISOString() }));
  const back = (await call('feed.get(numbers)', () => nums.get({ limit: 1 }))).results[0];
  check(back.actor === '1' && back.object === '3' && back.foreign_id === '7' && back.id === n.id,
    `numbers come back as strings: ${JSON.stringify(back)}`);

  console.log(`js8: ok, ${calls.length} calls, getstream ${version}`);
}

main();
