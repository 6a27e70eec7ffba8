"""Read and validate an Ansible YAML inventory.

fleet and ansible-playbook read the same files. The subset understood here is
Ansible's YAML inventory format: groups with ``hosts``, ``vars`` and
``children``; group vars inherited by children and hosts, host vars winning.
Every problem is a ConfigError naming the file and the key path.

``parse_inventory`` is pure (text in, Inventory out); ``load_inventory``
reads the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from fleet.errors import ConfigError
from fleet.model import (
    ADDRESS_RE,
    DYNO_GROUP,
    HOST_NAME_RE,
    HOST_NAME_RULE,
    ROUTER_GROUP,
    USER_RE,
    Capacity,
    Inventory,
    Node,
)

GROUP_KEYS = {"hosts", "vars", "children"}
GROUP_NAME_RULE = "letters, digits and underscores, not starting with a digit"


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    p = Path(path)
    try:
        text = p.read_text()
    except FileNotFoundError:
        raise ConfigError(str(p), "", "inventory file not found; run `fleet lab.up` or `fleet inventory.use PATH`") from None
    except OSError as e:
        raise ConfigError(str(p), "", f"cannot read inventory: {e.strerror}") from None
    return parse_inventory(text, str(p))


def parse_inventory(text: str, source: str) -> Inventory:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(source, "", f"not valid YAML: {where}{problem}") from None
    if data is None:
        raise ConfigError(source, "", "inventory is empty; it needs an 'all' group with hosts")
    if not isinstance(data, Mapping):
        raise ConfigError(source, "", f"top level must be a mapping of groups, got {_kind(data)}")

    walker = _Walker(source)
    top: dict[str, Any] = dict(data)
    all_group = top.pop("all", None) or {}
    walker.group("all", all_group, "all", parents=(), inherited={})
    for name, body in top.items():  # other top-level groups are implicit children of all
        walker.group(str(name), body or {}, str(name), parents=("all",), inherited=walker.group_vars.get("all", {}))

    if not walker.hosts:
        raise ConfigError(source, "all", f"defines no hosts; add them under all.children.{DYNO_GROUP}.hosts")

    nodes = tuple(walker.node(name) for name in walker.hosts)
    return Inventory(source=source, nodes=nodes, vars=tuple(sorted(walker.group_vars.get("all", {}).items())))


class _Walker:
    def __init__(self, source: str) -> None:
        self.source = source
        # host name -> (merged vars, groups, key path of first definition)
        self.hosts: dict[str, tuple[dict[str, Any], list[str], str]] = {}
        self.group_vars: dict[str, dict[str, Any]] = {}
        # host name -> var name -> key path where the host set it
        self.host_var_paths: dict[str, dict[str, str]] = {}

    def err(self, key_path: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key_path, problem)

    def group(self, name: str, body: Any, path: str, parents: tuple[str, ...], inherited: Mapping[str, Any]) -> None:
        if not name.isidentifier():
            raise self.err(path, f"group name {name!r} is not valid: use {GROUP_NAME_RULE}")
        if body is None:
            body = {}
        if not isinstance(body, Mapping):
            raise self.err(path, f"a group must be a mapping with hosts, vars or children, got {_kind(body)}")
        unknown = sorted(set(map(str, body)) - GROUP_KEYS)
        if unknown:
            raise self.err(f"{path}.{unknown[0]}", "unknown key in a group; allowed: hosts, vars, children")
        own_vars = body.get("vars") or {}
        if not isinstance(own_vars, Mapping):
            raise self.err(f"{path}.vars", f"must be a mapping, got {_kind(own_vars)}")
        merged = {**inherited, **{str(k): v for k, v in own_vars.items()}}
        self.group_vars[name] = merged
        groups = (*parents, name)

        hosts = body.get("hosts") or {}
        if not isinstance(hosts, Mapping):
            raise self.err(f"{path}.hosts", f"must be a mapping of host names, got {_kind(hosts)}")
        for host, hvars in hosts.items():
            hpath = f"{path}.hosts.{host}"
            host = str(host)
            if not HOST_NAME_RE.match(host):
                raise self.err(hpath, f"host name {host!r} is not valid: use {HOST_NAME_RULE}")
            if hvars is None:
                hvars = {}
            if not isinstance(hvars, Mapping):
                raise self.err(hpath, f"host vars must be a mapping, got {_kind(hvars)}")
            prev_vars, prev_groups, first_path = self.hosts.get(host, ({}, [], hpath))
            new_vars = {**merged, **prev_vars, **{str(k): v for k, v in hvars.items()}}
            new_groups = prev_groups + [g for g in groups if g not in prev_groups]
            self.hosts[host] = (new_vars, new_groups, first_path)
            self.host_var_paths.setdefault(host, {}).update({str(k): f"{hpath}.{k}" for k in hvars})

        children = body.get("children") or {}
        if not isinstance(children, Mapping):
            raise self.err(f"{path}.children", f"must be a mapping of groups, got {_kind(children)}")
        for child, cbody in children.items():
            self.group(str(child), cbody, f"{path}.children.{child}", groups, merged)

    def node(self, name: str) -> Node:
        hvars, groups, hpath = self.hosts[name]
        paths = self.host_var_paths.get(name, {})

        def kp(key: str) -> str:
            return paths.get(key, f"{hpath}.{key}")

        address = hvars.get("ansible_host", name)
        if not isinstance(address, str) or not ADDRESS_RE.match(address):
            raise self.err(kp("ansible_host"), f"must be an IP address or DNS name, got {address!r}")
        port = _int(hvars.get("ansible_port", 22), 1, 65535, kp("ansible_port"), self)
        user = hvars.get("ansible_user", "root")
        if not isinstance(user, str) or not USER_RE.match(user):
            raise self.err(kp("ansible_user"), f"must be a user name (lowercase letters, digits, _ and -), got {user!r}")
        key_file = hvars.get("ansible_ssh_private_key_file")
        if key_file is not None and (not isinstance(key_file, str) or not key_file):
            raise self.err(kp("ansible_ssh_private_key_file"), f"must be a file path, got {key_file!r}")
        mem = hvars.get("fleet_memory_mb")
        max_dynos = hvars.get("fleet_max_dynos")
        capacity = Capacity(
            memory_mb=None if mem is None else _int(mem, 64, 64 * 1024 * 1024, kp("fleet_memory_mb"), self),
            max_dynos=None if max_dynos is None else _int(max_dynos, 0, 100_000, kp("fleet_max_dynos"), self),
        )
        fleet_groups = tuple(g for g in groups if g in (DYNO_GROUP, ROUTER_GROUP))
        other = tuple(g for g in groups if g not in (DYNO_GROUP, ROUTER_GROUP, "all"))
        return Node(
            name=name,
            address=address,
            port=port,
            user=user,
            groups=fleet_groups + other,
            key_file=os.path.expanduser(key_file) if key_file else None,
            capacity=capacity,
        )


def _int(value: Any, lo: int, hi: int, key_path: str, walker: _Walker) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise walker.err(key_path, f"must be a whole number from {lo} to {hi}, got {value!r}")
    try:
        n = int(value)
    except ValueError:
        raise walker.err(key_path, f"must be a whole number from {lo} to {hi}, got {value!r}") from None
    if not lo <= n <= hi:
        raise walker.err(key_path, f"must be a whole number from {lo} to {hi}, got {n}")
    return n


def _kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return f"the string {value!r}"
    return type(value).__name__


def render_inventory(nodes: list[Node] | tuple[Node, ...], all_vars: Mapping[str, Any]) -> str:
    """Inventory YAML for ``nodes`` (used by the lab); parse_inventory reads it back."""
    groups: dict[str, dict[str, Any]] = {}
    for node in nodes:
        hv: dict[str, Any] = {"ansible_host": node.address}
        if node.port != 22:
            hv["ansible_port"] = node.port
        for g in node.groups:
            groups.setdefault(g, {"hosts": {}})["hosts"][node.name] = hv
    doc = {"all": {"vars": dict(all_vars), "children": groups}}
    return "# Written by fleet; Ansible YAML inventory format.\n" + yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
