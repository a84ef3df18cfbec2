"""stream-python 5.x, unchanged, against the gateway: every Feed and StreamClient method for
the endpoints the gateway serves, and analytics. The client holds the app's api key and a wrong
secret: the gateway drops its credentials and signs with its own. Any exception fails the run.

    GATEWAY_PORT=8080 COMPAT_API_KEY=<the gateway's api key> python3 tests/compat/python5.py
"""
import datetime
import os
import sys

import stream

PORT = int(os.environ["GATEWAY_PORT"])
KEY = os.environ["COMPAT_API_KEY"]
CALLS = []


def call(name, fn, *args, **kwargs):
    """One client call; the result, or the run stops with what raised."""
    try:
        result = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 - any failure of the client is a failure here
        print(f"python5: FAIL {name}: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    CALLS.append(name)
    return result


def check(cond, what):
    if not cond:
        print(f"python5: FAIL {what}", file=sys.stderr)
        sys.exit(1)


def main():
    assert stream.__version__.startswith("5."), stream.__version__
    # stream-python prefixes the host with "api." unless it is "localhost".
    client = stream.connect(KEY, "not-the-secret", base_url=f"http://localhost:{PORT}")
    user = client.feed("user", "py5")
    timeline = client.feed("timeline", "py5")
    t0 = datetime.datetime(2026, 11, 27, 10, 0, 0)

    # Feed: add one, add many, read (plain, enriched, with reaction flags).
    a = call("Feed.add_activity", user.add_activity, {
        "actor": "user:py5", "verb": "post", "object": "post:1",
        "foreign_id": "post:1", "time": t0.isoformat(), "to": ["notification:py5"]})
    call("Feed.add_activities", user.add_activities, [
        {"actor": "user:py5", "verb": "post", "object": "post:2",
         "foreign_id": "post:2", "time": (t0 + datetime.timedelta(minutes=1)).isoformat()},
        {"actor": "user:py5", "verb": "like", "object": "post:9"}])
    page = call("Feed.get", user.get, limit=5)
    check(len(page["results"]) == 3, f"three activities read back: {page}")
    call("Feed.get(enrich)", user.get, enrich=True, limit=2)
    call("Feed.get(reactions)", user.get, reactions={"own": True, "recent": True, "counts": True}, limit=2)
    call("Feed.get(id_lt)", user.get, limit=1, id_lt=a["id"])

    # Follows.
    call("Feed.follow", timeline.follow, "user", "py5", activity_copy_limit=10)
    check(len(call("Feed.get", timeline.get)["results"]) == 3, "follow copied the activities")
    call("Feed.followers", user.followers, limit=10)
    following = call("Feed.following", timeline.following, feeds=["user:py5"])
    check(len(following["results"]) == 1, f"following: {following}")
    call("Feed.update_activity_to_targets", user.update_activity_to_targets,
         "post:1", t0.isoformat(), added_targets=["notification:other"])
    call("Feed.unfollow", timeline.unfollow, "user", "py5", keep_history=True)

    # Removal by id and by foreign id.
    call("Feed.remove_activity(id)", user.remove_activity, a["id"])
    call("Feed.remove_activity(foreign_id)", user.remove_activity, foreign_id="post:2")

    # App-level calls.
    call("StreamClient.add_to_many", client.add_to_many,
         {"actor": "app", "verb": "announce", "object": "release:1",
          "foreign_id": "release:1", "time": t0.isoformat()}, ["user:a", "user:b"])
    call("StreamClient.follow_many", client.follow_many,
         [{"source": "timeline:a", "target": "user:a"}, {"source": "timeline:b", "target": "user:b"}],
         activity_copy_limit=5)
    call("StreamClient.unfollow_many", client.unfollow_many,
         [{"source": "timeline:a", "target": "user:a"},
          {"source": "timeline:b", "target": "user:b", "keep_history": True}])
    act = {"actor": "user:py5", "verb": "post", "object": "post:3",
           "foreign_id": "post:3", "time": t0.isoformat()}
    call("Feed.add_activity", user.add_activity, act)
    call("StreamClient.update_activities", client.update_activities, [dict(act, popularity=5)])
    call("StreamClient.update_activity", client.update_activity, dict(act, popularity=6))
    got = call("StreamClient.get_activities(foreign_id_times)", client.get_activities,
               foreign_id_times=[("post:3", t0)])
    check(got["results"][0]["popularity"] == 6, f"update reached the activity: {got}")
    aid = got["results"][0]["id"]
    call("StreamClient.get_activities(ids)", client.get_activities, ids=[aid])
    call("StreamClient.get_activities(enrich)", client.get_activities, ids=[aid], enrich=True)
    call("StreamClient.get_activities(reactions)", client.get_activities, ids=[aid],
         reactions={"counts": True})
    call("StreamClient.activity_partial_update(id)", client.activity_partial_update,
         id=aid, set={"product.price": 10}, unset=["popularity"])
    call("StreamClient.activity_partial_update(foreign_id)", client.activity_partial_update,
         foreign_id="post:3", time=t0, set={"verb": "edit"})
    call("StreamClient.activities_partial_update", client.activities_partial_update,
         [{"id": aid, "set": {"n": 1}}])
    got = call("StreamClient.get_activities(ids)", client.get_activities, ids=[aid])
    check(got["results"][0]["product"]["price"] == 10 and got["results"][0]["n"] == 1, f"{got}")
    call("StreamClient.og", client.og, "https://getstream.io")
    stats = call("StreamClient.follow_stats", client.follow_stats, "user:py5")
    check("results" in stats, f"{stats}")
    call("StreamClient.follow_stats(slugs)", client.follow_stats, "user:py5",
         followers_slugs=["timeline"], following_slugs=["user"])

    # Reactions.
    r = call("Reactions.add", client.reactions.add, "like", aid, "bob", data={"n": 1},
             target_feeds=["notification:bob"])
    child = call("Reactions.add_child", client.reactions.add_child, "comment", r["id"], "amy",
                 data={"text": "hi"})
    call("Reactions.get", client.reactions.get, r["id"])
    call("Reactions.update", client.reactions.update, r["id"], data={"n": 2})
    f = call("Reactions.filter(activity_id)", client.reactions.filter, activity_id=aid, limit=5)
    check(len(f["results"]) == 2, f"{f}")
    call("Reactions.filter(kind)", client.reactions.filter, activity_id=aid, kind="like")
    call("Reactions.filter(user_id)", client.reactions.filter, user_id="bob")
    call("Reactions.filter(reaction_id)", client.reactions.filter, reaction_id=r["id"])
    call("Reactions.delete(soft)", client.reactions.delete, child["id"], soft=True)
    call("Reactions.restore", client.reactions.restore, child["id"])
    call("Reactions.delete", client.reactions.delete, child["id"])

    # Enriched reads with reactions: feed and activities.
    rich = call("Feed.get(enrich, reactions)", user.get, enrich=True, user_id="bob",
                reactions={"own": True, "recent": True, "counts": True})
    mine = [x for x in rich["results"] if x["id"] == aid]
    check(mine and mine[0]["reaction_counts"] == {"like": 1}
          and mine[0]["latest_reactions"]["like"][0]["id"] == r["id"]
          and mine[0]["own_reactions"]["like"][0]["id"] == r["id"], f"enriched feed: {rich}")
    got = call("StreamClient.get_activities(reactions, kinds)", client.get_activities, ids=[aid],
               reactions={"recent": True, "counts": True, "kinds": ["like"]})
    check(got["results"][0]["reaction_counts"] == {"like": 1}, f"enriched activities: {got}")

    # Aggregated and notification feeds (Stream's default groups `aggregated`, `notification`).
    agg = client.feed("aggregated", "py5")
    call("Feed.follow(aggregated)", agg.follow, "user", "py5")
    groups = call("Feed.get(aggregated)", agg.get, limit=5)["results"]
    check(groups and groups[0]["activity_count"] == len(groups[0]["activities"]) >= 1
          and "group" in groups[0], f"aggregated: {groups}")
    notif = client.feed("notification", "py5n")
    for n, verb in enumerate(["follow", "like"]):
        call("Feed.add_activity(notification)", notif.add_activity,
             {"actor": "user:x", "verb": verb, "object": f"o:{n}"})
    first = call("Feed.get(notification)", notif.get)
    check(first["unseen"] == 2 and first["unread"] == 2
          and first["results"][0]["is_seen"] is False, f"notification: {first}")
    call("Feed.get(mark_seen=True)", notif.get, mark_seen=True)
    call("Feed.get(mark_read=[id])", notif.get, mark_read=[first["results"][0]["id"]])
    last = call("Feed.get(notification)", notif.get)
    check(last["unseen"] == 0 and last["unread"] == 1 and last["results"][0]["is_read"] is True,
          f"marked: {last}")

    # Collections.
    call("Collections.upsert", client.collections.upsert, "food",
         [{"id": "1", "name": "pizza"}, {"id": "2", "name": "pasta"}])
    sel = call("Collections.select", client.collections.select, "food", ["1", "2"])
    check(len(sel["response"]["data"]) == 2, f"{sel}")
    call("Collections.add", client.collections.add, "food", {"name": "soup"}, id="3")
    call("Collections.get", client.collections.get, "food", "3")
    call("Collections.update", client.collections.update, "food", "3", data={"name": "stew"})
    call("Collections.delete", client.collections.delete, "food", "3")
    call("Collections.delete_many", client.collections.delete_many, "food", ["1", "2"])

    # Users.
    call("Users.add", client.users.add, "bob", data={"name": "Bob"})
    call("Users.add(get_or_create)", client.users.add, "bob", get_or_create=True)
    call("Users.get", client.users.get, "bob")
    call("Users.update", client.users.update, "bob", data={"name": "Robert"})
    check(call("Users.get", client.users.get, "bob")["data"]["name"] == "Robert", "user updated")
    call("Users.delete", client.users.delete, "bob")

    # Numbers where Stream takes strings (as stream-python's own suite sends them): forwarded
    # as sent, stored as strings.
    nums = client.feed("user", "py5nums")
    n = call("Feed.add_activity(numbers)", nums.add_activity, {
        "actor": 1, "verb": "tweet", "object": 3, "foreign_id": 7,
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat()})
    back = call("Feed.get(numbers)", nums.get, limit=1)["results"][0]
    check((back["actor"], back["object"], back["foreign_id"]) == ("1", "3", "7"),
          f"numbers come back as strings: {back}")
    check(back["id"] == n["id"], f"the same activity: {back}")

    # Analytics, to the analytics host (in emulator mode, the emulator, which keeps the events).
    call("StreamClient.track_engagements", client.track_engagements, [
        {"content": "post:1", "label": "click", "user_data": "py5",
         "features": [{"group": "topic", "value": "go"}]}])
    call("StreamClient.track_impressions", client.track_impressions, [
        {"content_list": ["post:1", "post:2"], "user_data": {"id": "py5", "alias": "Py"}}])

    print(f"python5: ok, {len(CALLS)} calls, stream-python {stream.__version__}")


if __name__ == "__main__":
    main()
