"""stream-python 5.x, unchanged, meeting the emulator's token faults: each kind reaches the
client as the exception class Stream's code maps to (code 17: NotAllowedException), with
Stream's detail, then the fault is used up and the call succeeds.

    GATEWAY_PORT=8080 EMULATOR_URL=http://127.0.0.1:PORT COMPAT_API_KEY=<key> \\
        python3 tests/compat/python5_token_faults.py
"""
import json
import os
import sys
import urllib.request

import stream
from stream.exceptions import NotAllowedException

PORT = int(os.environ["GATEWAY_PORT"])
EMU = os.environ["EMULATOR_URL"]
KEY = os.environ["COMPAT_API_KEY"]
KINDS = {
    "expired": "token is expired by 1h0m0s",
    "invalid_signature": "signature is invalid",
    "not_allowed": "You do not have permission to perform this action.",
}


def fail(what):
    print(f"python5_token_faults: FAIL {what}", file=sys.stderr)
    sys.exit(1)


def main():
    client = stream.connect(KEY, "not-the-secret", base_url=f"http://localhost:{PORT}")
    feed = client.feed("user", "faulty")
    for kind, detail in KINDS.items():
        body = json.dumps({"token_error": kind, "feed": "user:faulty", "times": 1}).encode()
        req = urllib.request.Request(f"{EMU}/_emulator/faults", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req).close()
        try:
            feed.get(limit=1)
        except NotAllowedException as e:
            if e.status_code != 403 or detail not in str(e):
                fail(f"{kind}: status {e.status_code}, {e}")
        except Exception as e:  # noqa: BLE001 - another class is the failure looked for
            fail(f"{kind}: {type(e).__name__}: {e}")
        else:
            fail(f"{kind}: no exception")
        feed.get(limit=1)  # used up
    print(f"python5_token_faults: ok ({len(KINDS)} kinds raise NotAllowedException)")


if __name__ == "__main__":
    main()
