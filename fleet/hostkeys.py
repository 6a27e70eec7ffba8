"""Pinned host keys in an OpenSSH known_hosts file (pure text handling).

The same file serves fleet (paramiko, RejectPolicy) and ansible-playbook
(``-o UserKnownHostsFile=... -o StrictHostKeyChecking=yes``), so a host is
trusted only once its key was recorded at enrollment.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

KEY_TYPE_RE = re.compile(r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+)$")


@dataclass(frozen=True)
class HostKey:
    key_type: str
    key_b64: str

    @classmethod
    def parse(cls, text: str) -> HostKey:
        """Parse ``TYPE BASE64 [comment]`` (a .pub file or ssh-keyscan output without host)."""
        parts = text.split()
        if len(parts) < 2 or not KEY_TYPE_RE.match(parts[0]):
            raise ValueError(f"not an SSH public key: {text[:60]!r}")
        try:
            base64.b64decode(parts[1], validate=True)
        except ValueError:
            raise ValueError(f"not an SSH public key (bad base64): {text[:60]!r}") from None
        return cls(parts[0], parts[1])

    @property
    def fingerprint(self) -> str:
        digest = hashlib.sha256(base64.b64decode(self.key_b64)).digest()
        return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def entries_for(text: str, host: str) -> list[HostKey]:
    keys = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and not line.startswith("#") and host in parts[0].split(","):
            try:
                keys.append(HostKey.parse(" ".join(parts[1:3])))
            except ValueError:
                continue
    return keys


def with_pinned(text: str, host: str, keys: list[HostKey]) -> str:
    """known_hosts text with every entry for ``host`` replaced by ``keys``."""
    kept = [
        line
        for line in text.splitlines()
        if not (line.split() and not line.startswith("#") and host in line.split()[0].split(","))
    ]
    kept += [f"{host} {k.key_type} {k.key_b64}" for k in keys]
    return "\n".join(kept) + "\n"


def read_known_hosts(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""


def write_known_hosts(path: Path, text: str) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # also when a stale .tmp of another mode was left behind
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
