"""The pre-receive hook of an app's repository: build what is pushed to main.

git runs it with the pushed refs on stdin ("OLD NEW REF" lines) and relays
its output to the pusher as ``remote:`` lines. Exiting non-zero rejects the
whole push: refs are not updated, and the failed build left nothing behind.
Pushes to other branches are stored without a build.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from fleet.context import Fleet
from fleet.errors import FleetError

BUILD_REFS = ("refs/heads/main", "refs/heads/master")
ZERO = "0" * 40


def main(argv: list[str]) -> int:
    app = argv[1]
    git_dir = Path(os.environ.get("GIT_DIR", ".")).resolve()
    updates = [line.split() for line in sys.stdin.read().splitlines() if line.strip()]
    to_build = [(old, new, ref) for old, new, ref in updates if ref in BUILD_REFS]
    for _old, new, ref in to_build:
        if new == ZERO:
            print(
                f" !     deleting {ref.removeprefix('refs/heads/')} is not allowed: it is what the app is built from", flush=True
            )
            return 1
    if not to_build:
        return 0
    if len(to_build) > 1:
        print(" !     push main or master, not both at once", flush=True)
        return 1
    from fleet.services.builds import GitSource, build

    fleet = Fleet.open()
    _, new, _ref = to_build[0]
    try:
        build(fleet, app, GitSource(git_dir, new), lambda line: print(line, flush=True))
        fleet.audit("git.push", {"app": app, "commit": new}, "ok")
        return 0
    except FleetError as e:
        print(f" !     Push rejected: {e}", flush=True)
        try:
            fleet.audit("git.push", {"app": app, "commit": new}, "failed", str(e))
        except Exception:
            pass
        return 1
    finally:
        fleet.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
