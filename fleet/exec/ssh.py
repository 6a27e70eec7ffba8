"""The SSH executor: the only module that imports fabric (and paramiko).

- one pooled connection per host, reused across calls and threads;
- every call bounded: connect, banner, auth and command timeouts;
- host keys pinned: only keys in fleet's known_hosts are accepted (RejectPolicy);
  an unknown or changed key is refused with an error saying what to do.
"""

from __future__ import annotations

import select
import shlex
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import paramiko
from fabric import Config, Connection

from fleet.errors import HostKeyMismatch, HostKeyUnknown, HostUnreachable, RemoteError, RemoteTimeout
from fleet.exec.base import Argv, CommandResult, LineSink
from fleet.hostkeys import HostKey
from fleet.model import Node


class SSHExecutor:
    def __init__(
        self,
        known_hosts: Path,
        *,
        connect_timeout: float = 5.0,
        command_timeout: float = 30.0,
    ) -> None:
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self._pool: dict[str, Connection] = {}
        self._lock = threading.Lock()

    # -- connections -------------------------------------------------------
    def _connection(self, node: Node) -> Connection:
        with self._lock:
            conn = self._pool.get(node.name)
            if conn is not None and conn.is_connected:
                return conn
            connect_kwargs: dict[str, object] = {
                "look_for_keys": False,
                "allow_agent": False,
                "banner_timeout": self.connect_timeout,
                "auth_timeout": self.connect_timeout,
                "channel_timeout": self.connect_timeout,
            }
            if node.key_file:
                connect_kwargs["key_filename"] = [node.key_file]
            conn = Connection(
                host=node.address,
                port=node.port,
                user=node.user,
                config=Config(overrides={"load_ssh_configs": False, "run": {"hide": True, "warn": True}}),
                connect_timeout=max(1, int(self.connect_timeout)),
                connect_kwargs=connect_kwargs,
            )
            client = paramiko.SSHClient()
            if self.known_hosts.exists():
                client.get_host_keys().load(str(self.known_hosts))
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            conn.client = client
            self._pool[node.name] = conn
            return conn

    def _drop(self, node: Node) -> None:
        with self._lock:
            conn = self._pool.pop(node.name, None)
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    def _connect(self, node: Node) -> Connection:
        conn = self._connection(node)
        try:
            conn.open()
        except paramiko.BadHostKeyException as e:
            self._drop(node)
            raise HostKeyMismatch(
                node.name,
                f"host key changed: pinned {HostKey(e.expected_key.get_name(), e.expected_key.get_base64()).fingerprint}, "
                f"offered {HostKey(e.key.get_name(), e.key.get_base64()).fingerprint}; refusing to connect. "
                f"If the host was reinstalled, run `fleet nodes.enroll --node {node.name} --replace`",
            ) from None
        except paramiko.AuthenticationException:
            self._drop(node)
            raise RemoteError(
                node.name, f"SSH login as {node.user} refused; check ansible_user and ansible_ssh_private_key_file"
            ) from None
        except paramiko.SSHException as e:
            self._drop(node)
            if "not found in known_hosts" in str(e):
                raise HostKeyUnknown(
                    node.name, f"host key not pinned; run `fleet nodes.enroll --node {node.name}` to record it"
                ) from None
            raise HostUnreachable(node.name, f"SSH failed: {e}") from None
        except TimeoutError:
            self._drop(node)
            raise HostUnreachable(
                node.name, f"no answer on {node.address}:{node.port} within {self.connect_timeout:g}s"
            ) from None
        except OSError as e:
            self._drop(node)
            reason = e.strerror or str(e) or type(e).__name__
            raise HostUnreachable(node.name, f"cannot connect to {node.address}:{node.port}: {reason}") from None
        return conn

    # -- Executor ----------------------------------------------------------
    def run(
        self,
        node: Node,
        argv: Sequence[str],
        *,
        stdin: str | None = None,
        timeout: float | None = None,
        check: bool = True,
    ) -> CommandResult:
        argv = tuple(argv)
        conn = self._connect(node)
        limit = timeout if timeout is not None else self.command_timeout
        try:
            code, out, err = self._exec(conn, argv, stdin, limit)
        except TimeoutError:
            self._drop(node)
            raise RemoteTimeout(node.name, f"{argv[0]} did not finish within {limit:g}s") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            self._drop(node)
            raise HostUnreachable(node.name, f"connection lost: {e or type(e).__name__}") from None
        result = CommandResult(node.name, argv, code, out, err)
        return result.check() if check else result

    def _channel(self, conn: Connection) -> paramiko.Channel:
        """A new session channel on the host's pooled transport."""
        transport = conn.client.get_transport()
        if transport is None or not transport.is_active():
            raise paramiko.SSHException("transport closed")
        chan: paramiko.Channel = transport.open_session(timeout=self.connect_timeout)
        return chan

    def _exec(self, conn: Connection, argv: Argv, stdin: str | None, limit: float) -> tuple[int, str, str]:
        """One command on its own channel of the pooled transport; stdin is sent then closed."""
        chan = self._channel(conn)
        try:
            chan.settimeout(limit)
            chan.exec_command(shlex.join(argv))
            if stdin is not None:
                chan.sendall(stdin.encode())
            chan.shutdown_write()
            end = time.monotonic() + limit
            out, err = bytearray(), bytearray()
            while True:
                if chan.recv_ready():
                    out += chan.recv(65536)
                elif chan.recv_stderr_ready():
                    err += chan.recv_stderr(65536)
                elif chan.exit_status_ready() and chan.eof_received:
                    break
                elif time.monotonic() > end:
                    raise TimeoutError
                else:
                    select.select([chan], [], [], 0.05)
            while chan.recv_stderr_ready():
                err += chan.recv_stderr(65536)
            return chan.recv_exit_status(), out.decode(errors="replace"), err.decode(errors="replace")
        finally:
            chan.close()

    def stream(
        self,
        node: Node,
        argv: Sequence[str],
        on_line: LineSink,
        *,
        timeout: float | None = None,
        stop: threading.Event | None = None,
    ) -> int:
        argv = tuple(argv)
        conn = self._connect(node)
        try:
            return self._stream(conn, argv, on_line, timeout, stop)
        except TimeoutError:
            raise RemoteTimeout(node.name, f"{argv[0]} did not finish within {timeout:g}s") from None
        except (paramiko.SSHException, OSError, EOFError) as e:
            self._drop(node)
            raise HostUnreachable(node.name, f"connection lost: {e or type(e).__name__}") from None

    def _stream(self, conn: Connection, argv: Argv, on_line: LineSink, timeout: float | None, stop: threading.Event | None) -> int:
        """One command on its own channel; closing the channel on ``stop`` or timeout makes the host's sshd end it."""
        chan = self._channel(conn)
        transport = chan.get_transport()
        try:
            chan.set_combine_stderr(True)
            chan.exec_command(shlex.join(argv))
            chan.shutdown_write()
            end = None if timeout is None else time.monotonic() + timeout
            pending = bytearray()
            while True:
                if stop is not None and stop.is_set():
                    return -1
                if chan.recv_ready():
                    pending += chan.recv(65536)
                    *lines, rest = pending.split(b"\n")
                    pending = bytearray(rest)
                    for line in lines:
                        on_line(line.decode(errors="replace"))
                elif chan.exit_status_ready() and chan.eof_received:
                    break
                elif end is not None and time.monotonic() > end:
                    raise TimeoutError
                elif not transport.is_active():
                    raise paramiko.SSHException("transport closed")
                else:
                    select.select([chan], [], [], 0.1)
            if pending:
                on_line(pending.decode(errors="replace"))
            return int(chan.recv_exit_status())
        finally:
            chan.close()

    def openssh_argv(self, node: Node, *, tty: bool) -> list[str]:
        """OpenSSH's client with the same pinned host keys, for what needs this terminal (``fleet run``)."""
        argv = ["ssh", "-tt" if tty else "-T", "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-o", f"ConnectTimeout={max(1, int(self.connect_timeout))}",
                "-p", str(node.port)]  # fmt: skip
        if node.key_file:
            argv += ["-i", node.key_file, "-o", "IdentitiesOnly=yes"]
        return [*argv, f"{node.user}@{node.address}", "--"]

    def interactive(self, node: Node, argv: Sequence[str], *, tty: bool) -> int:
        return int(subprocess.call([*self.openssh_argv(node, tty=tty), shlex.join(argv)]))

    def put(self, node: Node, local: Path, remote: str) -> None:
        """Copy a file to the host over SFTP (slugs: never through a shell)."""
        self._sftp(node, f"copying {local.name}", lambda sftp: sftp.put(str(local), remote))

    def get(self, node: Node, remote: str, local: Path) -> None:
        """Copy a file from the host over SFTP (built slugs)."""
        self._sftp(node, f"copying {remote}", lambda sftp: sftp.get(remote, str(local)))

    def _sftp(self, node: Node, what: str, transfer: Callable[[paramiko.SFTPClient], object]) -> None:
        conn = self._connect(node)
        try:
            sftp = conn.client.open_sftp()
            try:
                sftp.get_channel().settimeout(self.command_timeout)
                transfer(sftp)
            finally:
                sftp.close()
        except (paramiko.SSHException, OSError, EOFError) as e:
            self._drop(node)
            raise HostUnreachable(node.name, f"{what} failed: {e or type(e).__name__}") from None

    def fetch_host_key(self, node: Node) -> HostKey:
        """The key the host offers now (for enrollment), without authenticating."""
        try:
            sock = socket.create_connection((node.address, node.port), timeout=self.connect_timeout)
        except OSError as e:
            raise HostUnreachable(node.name, f"cannot connect to {node.address}:{node.port}: {e.strerror or e}") from None
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.connect_timeout
            transport.start_client(timeout=self.connect_timeout)
            key = transport.get_remote_server_key()
            return HostKey(key.get_name(), key.get_base64())
        except (paramiko.SSHException, OSError) as e:
            raise HostUnreachable(node.name, f"SSH handshake failed: {e}") from None
        finally:
            transport.close()

    def close(self) -> None:
        with self._lock:
            conns = list(self._pool.values())
            self._pool.clear()
        for c in conns:
            try:
                c.close()
            except Exception:
                pass
