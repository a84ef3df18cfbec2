"""stream-python 2.x, unchanged, against the gateway: `add_to_many` and `follow_many`, which
this client signs itself with an HTTP Signature (keyed with its own, wrong, secret; it is given
the app's api key, as services are). The
gateway drops that signature and signs with the real secret. Any exception fails the run.

    GATEWAY_PORT=8080 python3 tests/compat/python2_legacy.py
"""
import os
import sys

import stream

PORT = int(os.environ["GATEWAY_PORT"])
KEY = os.environ["COMPAT_API_KEY"]


def main():
    assert stream.__version__.startswith("2."), stream.__version__
    client = stream.connect(KEY, "not-the-secret", base_url=f"http://localhost:{PORT}")
    try:
        client.add_to_many(
            {"actor": "app", "verb": "announce", "object": "release:2",
             "foreign_id": "release:2", "time": "2026-11-27T11:00:00"},
            ["user:legacy1", "user:legacy2"])
        client.follow_many(
            [{"source": "timeline:legacy1", "target": "user:legacy1"}], activity_copy_limit=3)
        page = client.feed("timeline", "legacy1").get(limit=5)
    except Exception as e:  # noqa: BLE001 - any failure of the client is a failure here
        print(f"python2_legacy: FAIL {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
    if [a["object"] for a in page["results"]] != ["release:2"]:
        print(f"python2_legacy: FAIL the follow did not copy the activity: {page}", file=sys.stderr)
        sys.exit(1)
    print(f"python2_legacy: ok, 3 calls, stream-python {stream.__version__}")


if __name__ == "__main__":
    main()
