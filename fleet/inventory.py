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
    ADDON_GROUP,
    ADDRESS_RE,
    DYNO_GROUP,
    FLEET_GROUPS,
    HOST_NAME_RE,
    HOST_NAME_RULE,
    USER_RE,
    Capacity,
    Inventory,
    Node,
)

GROUP_KEYS = {"hosts", "vars", "children"}
GROUP_NAME_RULE = "letters, digits and underscores, not starting with a digit"


#: The network fleet's hosts talk over (CIDR): the postgres role lets add-on clients in from it only. Required for
#: add-on hosts; the lab sets it to its bridge's subnet.
HOST_NETWORK_VAR = "fleet_host_network"

#: The router role's variable for where HAProxy's stats page and Prometheus exporter listen.
METRICS_ADDRESS_VAR = "fleet_router_metrics_address"


def _read(path: str | os.PathLike[str]) -> str:
    p = Path(path)
    try:
        return p.read_text()
    except FileNotFoundError:
        raise ConfigError(str(p), "", "inventory file not found; check the path, or run `fleet lab.up` for a local lab") from None
    except OSError as e:
        raise ConfigError(str(p), "", f"cannot read inventory: {e.strerror}") from None


def load_inventory(path: str | os.PathLike[str]) -> Inventory:
    return parse_inventory(_read(path), str(Path(path)))


def parse_inventory(text: str, source: str) -> Inventory:
    walker = _walk(text, source)
    nodes = tuple(walker.node(name) for name in walker.hosts)
    return Inventory(source=source, nodes=nodes, vars=tuple(sorted(walker.all_vars.items())))


def load_router_metrics_addresses(path: str | os.PathLike[str]) -> dict[str, str]:
    return parse_router_metrics_addresses(_read(path), str(Path(path)))


def parse_router_metrics_addresses(text: str, source: str) -> dict[str, str]:
    """Each router host's management address, as the router role resolves ``fleet_router_metrics_address``.

    The host's own value of that variable (host or group vars) if it has one, else the role's default, the
    host's inventory address (``ansible_host | default(inventory_hostname)``): fleet's router sync renders the
    same haproxy.cfg as the role only if it binds the same address.
    """
    walker = _walk(text, source)
    out = {}
    for name in walker.hosts:
        node = walker.node(name)
        if not node.is_router:
            continue
        hvars, paths = walker.resolved_vars(name)
        address = hvars.get(METRICS_ADDRESS_VAR, node.address)
        if not isinstance(address, str) or not ADDRESS_RE.fullmatch(address):
            key_path = paths.get(METRICS_ADDRESS_VAR, f"{walker.hosts[name][2]}.{METRICS_ADDRESS_VAR}")
            raise ConfigError(source, key_path, f"must be an IP address or DNS name, got {address!r}")
        out[name] = address
    return out


def _walk(text: str, source: str) -> _Walker:
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
    walker.group("all", all_group, "all", parents=())
    for name, body in top.items():  # other top-level groups are implicit children of all
        walker.group(str(name), body or {}, str(name), parents=("all",))

    if not walker.hosts:
        raise ConfigError(source, "all", f"defines no hosts; add them under all.children.{DYNO_GROUP}.hosts")
    return walker


class _Walker:
    """Walks the group tree; resolves each host's vars the way Ansible does.

    Precedence, lowest first: groups by depth (all=0, its children=1, ...),
    groups of equal depth by name, then the host's own vars.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        # group name -> (depth, own vars, key path of the group's vars)
        self.groups: dict[str, tuple[int, dict[str, Any], str]] = {}
        # host name -> (own vars, groups incl. ancestors, key path of first definition)
        self.hosts: dict[str, tuple[dict[str, Any], list[str], str]] = {}
        # host name -> var name -> key path where the host set it
        self.host_var_paths: dict[str, dict[str, str]] = {}

    @property
    def all_vars(self) -> dict[str, Any]:
        return dict(self.groups.get("all", (0, {}, ""))[1])

    def err(self, key_path: str, problem: str) -> ConfigError:
        return ConfigError(self.source, key_path, problem)

    def group(self, name: str, body: Any, path: str, parents: tuple[str, ...]) -> None:
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
        depth, prev, vars_path = self.groups.get(name, (len(parents), {}, f"{path}.vars"))
        self.groups[name] = (depth, {**prev, **{str(k): v for k, v in own_vars.items()}}, vars_path)
        groups = (*parents, name)

        hosts = body.get("hosts") or {}
        if not isinstance(hosts, Mapping):
            raise self.err(f"{path}.hosts", f"must be a mapping of host names, got {_kind(hosts)}")
        for host, hvars in hosts.items():
            hpath = f"{path}.hosts.{host}"
            host = str(host)
            if not HOST_NAME_RE.fullmatch(host):
                raise self.err(hpath, f"host name {host!r} is not valid: use {HOST_NAME_RULE}")
            if hvars is None:
                hvars = {}
            if not isinstance(hvars, Mapping):
                raise self.err(hpath, f"host vars must be a mapping, got {_kind(hvars)}")
            prev_vars, prev_groups, first_path = self.hosts.get(host, ({}, [], hpath))
            new_vars = {**prev_vars, **{str(k): v for k, v in hvars.items()}}
            new_groups = prev_groups + [g for g in groups if g not in prev_groups]
            self.hosts[host] = (new_vars, new_groups, first_path)
            self.host_var_paths.setdefault(host, {}).update({str(k): f"{hpath}.{k}" for k in hvars})

        children = body.get("children") or {}
        if not isinstance(children, Mapping):
            raise self.err(f"{path}.children", f"must be a mapping of groups, got {_kind(children)}")
        for child, cbody in children.items():
            self.group(str(child), cbody, f"{path}.children.{child}", groups)

    def resolved_vars(self, name: str) -> tuple[dict[str, Any], dict[str, str]]:
        """The host's effective vars, and for each the key path it came from."""
        own, groups, hpath = self.hosts[name]
        values: dict[str, Any] = {}
        paths: dict[str, str] = {}
        for g in sorted(groups, key=lambda g: (self.groups[g][0], g)):
            _, gvars, gpath = self.groups[g]
            for k, v in gvars.items():
                values[k], paths[k] = v, f"{gpath}.{k}"
        for k, v in own.items():
            values[k], paths[k] = v, self.host_var_paths[name].get(k, f"{hpath}.{k}")
        return values, paths

    def node(self, name: str) -> Node:
        _, groups, hpath = self.hosts[name]
        hvars, paths = self.resolved_vars(name)

        def kp(key: str) -> str:
            return paths.get(key, f"{hpath}.{key}")

        address = hvars.get("ansible_host", name)
        if not isinstance(address, str) or not ADDRESS_RE.fullmatch(address):
            raise self.err(kp("ansible_host"), f"must be an IP address or DNS name, got {address!r}")
        port = _int(hvars.get("ansible_port", 22), 1, 65535, kp("ansible_port"), self)
        user = hvars.get("ansible_user", "root")
        if not isinstance(user, str) or not USER_RE.fullmatch(user):
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
        if ADDON_GROUP in groups:
            _host_network(hvars.get(HOST_NETWORK_VAR), kp(HOST_NETWORK_VAR), self)
        fleet_groups = tuple(g for g in groups if g in FLEET_GROUPS)
        other = tuple(g for g in groups if g not in (*FLEET_GROUPS, "all"))
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


def _host_network(value: Any, key_path: str, walker: _Walker) -> str:
    import ipaddress

    if value is None:
        raise walker.err(key_path, "an add-on host needs it: the network its clients (dyno hosts) connect from, e.g. 10.0.0.0/24")
    try:
        return str(ipaddress.ip_network(str(value), strict=True))
    except ValueError:
        raise walker.err(key_path, f"must be a network such as 10.0.0.0/24 (host bits zero), got {value!r}") from None


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
        for i, g in enumerate(node.groups):
            # a host's vars are written once, under its first group
            groups.setdefault(g, {"hosts": {}})["hosts"][node.name] = _host_vars(node, all_vars) if i == 0 else None
    doc = {"all": {"vars": dict(all_vars), "children": groups}}
    yaml_text: str = yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)
    return "# Written by fleet; Ansible YAML inventory format.\n" + yaml_text


def _host_vars(node: Node, all_vars: Mapping[str, Any]) -> dict[str, Any]:
    hv: dict[str, Any] = {"ansible_host": node.address}
    if node.port != 22:
        hv["ansible_port"] = node.port
    if node.user != all_vars.get("ansible_user", "root"):
        hv["ansible_user"] = node.user
    if node.key_file and node.key_file != all_vars.get("ansible_ssh_private_key_file"):
        hv["ansible_ssh_private_key_file"] = node.key_file
    if node.capacity.memory_mb is not None:
        hv["fleet_memory_mb"] = node.capacity.memory_mb
    if node.capacity.max_dynos is not None:
        hv["fleet_max_dynos"] = node.capacity.max_dynos
    return hv
