-- wrk script: POST one activity (with foreign_id and time) to user:42's feed.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"actor":"user:42","verb":"post","object":"post:1","foreign_id":"post:1","time":"2026-11-27T10:00:00"}'
