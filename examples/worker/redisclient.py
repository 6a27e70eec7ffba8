"""A tiny Redis client on the standard library alone (RESP2 over a socket): enough for this example and fleet's tests.

    r = Redis.from_url(os.environ["REDIS_URL"])  # redis://[USER]:PASSWORD@HOST:PORT[/DB], as fleet's add-on sets it
    r.command("SET", "k", "v"); r.command("GET", "k")  # -> b"v"

A reply of Redis's errors (-ERR, -NOPERM, -OOM ...) raises ``RedisError`` with its text.
"""

from __future__ import annotations

import socket
import urllib.parse


class RedisError(Exception):
    pass


class Redis:
    def __init__(self, host: str, port: int, password: str | None = None, user: str | None = None, db: int = 0,
                 timeout: float = 10.0) -> None:  # fmt: skip
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.file = self.sock.makefile("rb")
        if password is not None:
            self.command("AUTH", *([user] if user else []), password)
        if db:
            self.command("SELECT", str(db))

    @classmethod
    def from_url(cls, url: str, timeout: float = 10.0) -> Redis:
        u = urllib.parse.urlsplit(url)
        if u.scheme != "redis" or not u.hostname:
            raise ValueError("a redis:// URL with a host is needed")
        password = urllib.parse.unquote(u.password) if u.password is not None else None
        user = urllib.parse.unquote(u.username) if u.username else None
        db = int(u.path.strip("/") or 0)
        return cls(u.hostname, u.port or 6379, password, user, db, timeout)

    def command(self, *args: str | bytes) -> object:
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg.encode() if isinstance(arg, str) else arg
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(parts))
        return self._reply()

    def _reply(self) -> object:
        line = self.file.readline()
        if not line.endswith(b"\r\n"):
            raise ConnectionError("the Redis server closed the connection")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            size = int(rest)
            if size < 0:
                return None
            data = self.file.read(size + 2)
            return data[:-2]
        if kind == b"*":
            count = int(rest)
            return None if count < 0 else [self._reply() for _ in range(count)]
        raise ConnectionError(f"not a RESP reply: {line[:40]!r}")

    def close(self) -> None:
        self.file.close()
        self.sock.close()
