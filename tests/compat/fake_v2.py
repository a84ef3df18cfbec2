"""A small recording fake of Stream's /api/v2 host, for scripts/compat (stdlib only).

It checks every request as Stream would a server-side call, strictly: `api_key` exactly once
and the app's; `Stream-Auth-Type: jwt`; `Authorization` a JWT (no `Bearer`), HS256 under the
real secret, with claims exactly {"server": true}; and none of the clients' own credentials.
A request that passes gets 201 (200 for a GET) and `{"duration": "1.00ms"}`; one that does not
gets 401 in Stream's v2 error shape. Each request is one JSON line in the record file.

    python3 fake_v2.py PORT_FILE RECORD_FILE   (API key and secret from FAKE_V2_KEY, FAKE_V2_SECRET)
"""

import base64
import hashlib
import hmac
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

KEY = os.environ["FAKE_V2_KEY"]
SECRET = os.environ["FAKE_V2_SECRET"].encode()
WRONG = os.environ.get("FAKE_V2_WRONG_SECRET", "").encode()


def b64d(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def verify(method, target, headers):
    query = urlsplit(target).query
    keys = [v for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() == "api_key"]
    if keys != [KEY]:
        return f"api_key {keys!r}"
    auth_types = headers.get_all("stream-auth-type") or []
    if auth_types != ["jwt"]:
        return f"stream-auth-type {auth_types!r}"
    tokens = headers.get_all("authorization") or []
    if len(tokens) != 1:
        return f"{len(tokens)} authorization headers"
    parts = tokens[0].split(".")
    if len(parts) != 3:
        return "authorization is not a bare JWT"
    try:
        head = json.loads(b64d(parts[0]))
        claims = json.loads(b64d(parts[1]))
    except ValueError:
        return "token is not JSON"
    if head.get("alg") != "HS256":
        return f"alg {head.get('alg')}"
    signing = f"{parts[0]}.{parts[1]}".encode()
    want = hmac.new(SECRET, signing, hashlib.sha256).digest()
    if not hmac.compare_digest(want, b64d(parts[2])):
        if WRONG and hmac.compare_digest(hmac.new(WRONG, signing, hashlib.sha256).digest(), b64d(parts[2])):
            return "signed with the client's (wrong) secret: the client's token arrived"
        return "bad signature"
    if claims != {"server": True}:
        return f"claims {claims!r}"
    return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def handle_any(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n) if n else b""
        why = verify(self.command, self.path, self.headers)
        with open(sys.argv[2], "a") as f:
            f.write(json.dumps({"method": self.command, "target": self.path,
                                "refused": why, "body_bytes": len(body)}) + "\n")
        if why:
            status, answer = 401, {"code": 5, "message": why, "StatusCode": 401,
                                   "duration": "0.01ms", "more_info": "", "details": []}
        else:
            status, answer = (200 if self.command == "GET" else 201), {"duration": "1.00ms"}
        out = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_any

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1], "w") as f:
    f.write(str(server.server_address[1]))
server.serve_forever()
