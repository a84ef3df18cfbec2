"""stream-python 5.x, unchanged, adding the activity tests/compat/js8_realtime.cjs waits for:
`timeline:js8rt` follows `user:js8rt`, and an activity is added to `user:js8rt` through the
gateway, with the app's api key and a wrong secret (the gateway signs with its own).

    COMPAT_API_KEY=... GATEWAY_PORT=8080 python3 tests/compat/python5_realtime.py
"""
import os

import stream

PORT = int(os.environ["GATEWAY_PORT"])


def main():
    assert stream.__version__.startswith("5."), stream.__version__
    client = stream.connect(
        os.environ["COMPAT_API_KEY"], "not-the-secret", base_url=f"http://localhost:{PORT}"
    )
    client.feed("timeline", "js8rt").follow("user", "js8rt")
    client.feed("user", "js8rt").add_activity(
        {"actor": "user:js8rt", "verb": "post", "object": "rt:1"}
    )


if __name__ == "__main__":
    main()
