"""Stream's Python server SDK for Chat, Video and Feeds v3 (PyPI `getstream` 7.x), unchanged,
holding the app's api key and a WRONG secret, through the gateway (stream.v2 = true) against
tests/compat/fake_v2.py, which checks every call is signed with the real secret. Exits 1 on
any call that raises or answers other than 2xx."""

import os
import sys
import warnings

from getstream import Stream
from getstream.models import (
    CallRequest,
    ChannelInput,
    MessageRequest,
    QueryUsersPayload,
    UserRequest,
)

warnings.simplefilter("ignore")  # the fake answers only {"duration": ...}: missing fields warn

client = Stream(
    api_key=os.environ["COMPAT_V2_KEY"],
    api_secret="a-wrong-secret-the-gateway-replaces",
    base_url=f"http://127.0.0.1:{os.environ['GATEWAY_V2_PORT']}",
)
channel = client.chat.channel("messaging", "general")
call = client.video.call("default", "c1")
feed = client.feeds.feed("user", "u1")

calls = [
    ("common.UpdateUsers", lambda: client.upsert_users(UserRequest(id="u1", name="One"))),
    ("common.QueryUsers", lambda: client.query_users(QueryUsersPayload(filter_conditions={"id": "u1"}))),
    ("common.GetApp", lambda: client.get_app()),
    ("chat.GetOrCreateChannel", lambda: channel.get_or_create(data=ChannelInput(created_by_id="u1"))),
    ("chat.SendMessage", lambda: channel.send_message(message=MessageRequest(text="hi", user_id="u1"))),
    ("chat.QueryChannels", lambda: client.chat.query_channels(filter_conditions={"type": "messaging"})),
    ("chat.MarkRead", lambda: channel.mark_read(user_id="u1")),
    ("video.GetOrCreateCall", lambda: call.get_or_create(data=CallRequest(created_by_id="u1"))),
    ("video.GetCall", lambda: call.get()),
    ("feeds.AddActivity", lambda: client.feeds.add_activity(type="post", feeds=["user:u1"], text="hi", user_id="u1")),
    ("feeds.GetOrCreateFeed", lambda: feed.get_or_create(user_id="u1")),
    ("feeds.Follow", lambda: client.feeds.follow(source="timeline:u1", target="user:u2")),
]

failed = 0
for name, f in calls:
    try:
        r = f()
        status = getattr(r, "status_code", lambda: None)
        status = status() if callable(status) else status
        if status is not None and not 200 <= int(status) < 300:
            raise RuntimeError(f"status {status}")
        print(f"  ok   {name}")
    except Exception as e:  # noqa: BLE001 - report every failure, then fail
        failed += 1
        print(f"  FAIL {name}: {type(e).__name__}: {e}")
print(f"python getstream 7: {len(calls) - failed}/{len(calls)} calls ok")
sys.exit(1 if failed else 0)
