"""examples/worker/redisclient.py (the standard-library Redis client the worker example and the Redis lab tests use)
against a fake server speaking RESP: what it sends for REDIS_URL's forms, how it reads each kind of reply."""

from __future__ import annotations

import importlib.util
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

PATH = Path(__file__).resolve().parents[2] / "examples/worker/redisclient.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("redisclient", PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rc = load()
REPLIES = {
    b"AUTH": b"+OK\r\n",
    b"SELECT": b"+OK\r\n",
    b"GET": b"$5\r\nhello\r\n",
    b"MISSING": b"$-1\r\n",
    b"INCR": b":42\r\n",
    b"KEYS": b"*2\r\n$1\r\na\r\n$2\r\nbc\r\n",
    b"SET": b"-OOM command not allowed when used memory > 'maxmemory'.\r\n",
}


class FakeRedis:
    """Reads RESP arrays of bulk strings, records them, answers from REPLIES by the command's name."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.seen: list[list[bytes]] = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        conn, _ = self.server.accept()
        with conn, conn.makefile("rb") as f:
            while header := f.readline():
                args = []
                for _ in range(int(header[1:])):
                    size = int(f.readline()[1:])
                    args.append(f.read(size + 2)[:-2])
                self.seen.append(args)
                conn.sendall(REPLIES[args[0]])


@pytest.fixture
def fake() -> Iterator[FakeRedis]:
    server = FakeRedis()
    yield server
    server.server.close()


def test_password_only_url_sends_auth_with_the_password(fake: FakeRedis) -> None:
    r = rc.Redis.from_url(f"redis://:s3cret@127.0.0.1:{fake.port}")
    assert r.command("GET", "k") == b"hello"
    assert r.command("MISSING") is None
    assert r.command("INCR", "n") == 42
    assert r.command("KEYS", "*") == [b"a", b"bc"]
    with pytest.raises(rc.RedisError, match=r"^OOM command not allowed"):
        r.command("SET", "big", b"x" * 100)
    r.close()
    assert fake.seen[0] == [b"AUTH", b"s3cret"]
    assert fake.seen[-1] == [b"SET", b"big", b"x" * 100]


def test_user_and_database_in_the_url(fake: FakeRedis) -> None:
    r = rc.Redis.from_url(f"redis://default:s3cret@127.0.0.1:{fake.port}/2")
    r.close()
    assert fake.seen == [[b"AUTH", b"default", b"s3cret"], [b"SELECT", b"2"]]


def test_not_a_redis_url() -> None:
    with pytest.raises(ValueError, match="a redis:// URL with a host is needed"):
        rc.Redis.from_url("postgres://u:p@h:5432/d")
