"""A worker process: does a unit of work every few seconds and logs it. With a Redis add-on (REDIS_URL, from
`fleet addons.create redis -a APP`) it also records each job there, where the web process reads it."""

import os
import time

from redisclient import Redis, RedisError

dyno = os.environ.get("DYNO", "?")
redis: Redis | None = None
n = 0
while True:
    n += 1
    if os.environ.get("REDIS_URL"):
        try:
            if redis is None:
                redis = Redis.from_url(os.environ["REDIS_URL"])
            redis.command("SET", "worker:last", f"{dyno} job {n}")
            redis.command("INCR", "worker:jobs")
        except (OSError, RedisError) as e:  # the add-on restarting, full (its plan's size), ...: the next job tries again
            print(f"worker {dyno}: redis: {e}", flush=True)
            redis = None
    print(f"worker {dyno}: job {n} done", flush=True)
    time.sleep(5)
