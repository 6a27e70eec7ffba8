"""A web process that answers with what the worker last wrote (in Redis, with a Redis add-on: REDIS_URL)."""

import http.server
import os
import pathlib

from redisclient import Redis, RedisError

STATE = pathlib.Path("/tmp/worker-beat")


def from_redis() -> str:
    try:
        redis = Redis.from_url(os.environ["REDIS_URL"], timeout=5)
        try:
            last, jobs = redis.command("GET", "worker:last"), redis.command("GET", "worker:jobs")
        finally:
            redis.close()
    except (OSError, RedisError) as e:
        return f"redis: unreachable ({e})"
    if not isinstance(last, bytes):
        return "redis: no job yet"
    return f"redis: last {last.decode()} ({int(jobs) if isinstance(jobs, bytes) else 0} jobs)"


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = f"web {os.environ.get('DYNO', '?')} up; worker beats in this dyno: {STATE.read_text() if STATE.exists() else 'none'}"
        if os.environ.get("REDIS_URL"):
            body += f"; {from_redis()}"
        self.send_response(200)
        self.end_headers()
        self.wfile.write(f"{body}\n".encode())


http.server.ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "5000"))), Handler).serve_forever()
