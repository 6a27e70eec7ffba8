"""A worker process: does a unit of work every few seconds and logs it."""

import os
import time

n = 0
while True:
    n += 1
    print(f"worker {os.environ.get('DYNO', '?')}: job {n} done", flush=True)
    time.sleep(5)
