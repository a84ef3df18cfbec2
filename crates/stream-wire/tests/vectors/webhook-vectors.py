# Known answers for the webhook signature, computed with Python's hmac (independently of the
# gateway's Rust code). Run from the repository root:
#   python3 crates/stream-wire/tests/vectors/webhook-vectors.py > crates/stream-wire/tests/vectors/webhook-vectors.json
import hmac, hashlib, json
cases = [
  ("emulator-secret", '{"type":"message.new","message":{"id":"m1","text":"hi"}}'),
  ("test-secret-5f0c1e9a7b3d", '{"type":"feeds.activity.added","activity":{"id":"a1"}}'),
  ("k", ""),
  ("unicode-s\u00e9cret", '{"text":"h\u00e9llo \u2603"}'),
  ("a" * 100, '{"type":"user.updated"}\n'),
]
out = {"command": "python3 crates/stream-wire/tests/vectors/webhook-vectors.py > crates/stream-wire/tests/vectors/webhook-vectors.json",
       "algorithm": "hex(HMAC-SHA256(key = UTF-8 secret, message = raw body bytes))",
       "vectors": []}
for secret, body in cases:
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).hexdigest()
    out["vectors"].append({"secret": secret, "body": body, "signature": sig})
print(json.dumps(out, indent=2, ensure_ascii=False))
