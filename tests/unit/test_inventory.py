"""fleet.inventory: parsing, validation messages and the render/parse round trip."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleet.errors import ConfigError, UsageError
from fleet.inventory import load_inventory, parse_inventory, render_inventory
from fleet.lab.plan import lab_inventory_vars, lab_nodes
from fleet.model import Capacity, Node

HOST_RULE = "lowercase letters, digits, '.', '_' and '-', starting and ending with a letter or digit, at most 63 characters"

VALID = textwrap.dedent(
    """\
    # A two-group inventory: node1 is both a dyno host and the router.
    all:
      vars:
        ansible_user: deploy
        ansible_port: 2200
        fleet_memory_mb: 4096
      children:
        dyno_hosts:
          vars:
            ansible_port: 2222
          hosts:
            node1:
              ansible_host: 10.0.0.11
            node2:
              ansible_host: 10.0.0.12
              ansible_port: 2022
              ansible_user: ops
              fleet_memory_mb: 8192
              fleet_max_dynos: 8
        router_hosts:
          hosts:
            node1:
            edge:
    """
)


def one_host(name: str = "node1", group: str = "dyno_hosts", **hvars: Any) -> str:
    """An inventory with a single host in ``group`` carrying ``hvars``."""
    return yaml.safe_dump({"all": {"children": {group: {"hosts": {name: hvars or None}}}}})


def config_error(text: str, source: str = "inv.yml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_inventory(text, source)
    return info.value


# -- valid inventories ----------------------------------------------------------
def test_valid_inventory_nodes_in_first_seen_order() -> None:
    inv = parse_inventory(VALID, "inv.yml")
    assert inv.source == "inv.yml"
    assert inv.names == ("node1", "node2", "edge")


def test_host_in_two_groups_has_both_and_keeps_dyno_group_vars() -> None:
    node1 = parse_inventory(VALID, "inv.yml").node("node1")
    assert node1 == Node(
        name="node1",
        address="10.0.0.11",
        port=2222,  # dyno_hosts.vars beats all.vars
        user="deploy",  # from all.vars
        groups=("dyno_hosts", "router_hosts"),
        key_file=None,
        capacity=Capacity(memory_mb=4096, max_dynos=None),
    )
    assert node1.is_dyno_host
    assert node1.is_router
    assert node1.known_hosts_name == "[10.0.0.11]:2222"


def test_host_vars_win_over_group_and_all_vars() -> None:
    node2 = parse_inventory(VALID, "inv.yml").node("node2")
    assert node2 == Node(
        name="node2",
        address="10.0.0.12",
        port=2022,
        user="ops",
        groups=("dyno_hosts",),
        capacity=Capacity(memory_mb=8192, max_dynos=8),
    )
    assert node2.is_dyno_host
    assert not node2.is_router


def test_router_only_host_inherits_all_vars_and_defaults_address_to_name() -> None:
    edge = parse_inventory(VALID, "inv.yml").node("edge")
    assert edge == Node(
        name="edge",
        address="edge",
        port=2200,
        user="deploy",
        groups=("router_hosts",),
        capacity=Capacity(memory_mb=4096),
    )


def test_inventory_vars_are_the_all_group_vars_sorted() -> None:
    inv = parse_inventory(VALID, "inv.yml")
    assert inv.vars == (("ansible_port", 2200), ("ansible_user", "deploy"), ("fleet_memory_mb", 4096))


def test_defaults_port_22_user_root_address_is_name() -> None:
    inv = parse_inventory(one_host("web1"), "inv.yml")
    assert inv.nodes == (Node(name="web1", address="web1", port=22, user="root", groups=("dyno_hosts",)),)
    assert inv.nodes[0].capacity == Capacity(memory_mb=None, max_dynos=None)
    assert inv.nodes[0].known_hosts_name == "web1"
    assert inv.vars == ()


def test_port_given_as_a_quoted_string_is_accepted() -> None:
    node = parse_inventory(one_host(ansible_port="2222"), "inv.yml").nodes[0]
    assert node.port == 2222


def test_capacity_overrides_and_zero_max_dynos() -> None:
    node = parse_inventory(one_host(fleet_memory_mb=64, fleet_max_dynos=0), "inv.yml").nodes[0]
    assert node.capacity == Capacity(memory_mb=64, max_dynos=0)


def test_key_file_tilde_is_expanded(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    node = parse_inventory(one_host(ansible_ssh_private_key_file="~/.ssh/fleet_ed25519"), "inv.yml").nodes[0]
    assert node.key_file == f"{tmp_path}/.ssh/fleet_ed25519"


def test_key_file_from_all_vars_applies_to_every_host(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    text = textwrap.dedent(
        """\
        all:
          vars:
            ansible_ssh_private_key_file: ~/keys/id_ed25519
          children:
            dyno_hosts:
              hosts:
                a:
                b:
                  ansible_ssh_private_key_file: /etc/fleet/b_key
        """
    )
    inv = parse_inventory(text, "inv.yml")
    assert [n.key_file for n in inv.nodes] == [f"{tmp_path}/keys/id_ed25519", "/etc/fleet/b_key"]


def test_top_level_groups_are_children_of_all() -> None:
    text = textwrap.dedent(
        """\
        all:
          vars:
            ansible_user: deploy
        dyno_hosts:
          hosts:
            node1:
              ansible_host: 192.168.1.5
        """
    )
    inv = parse_inventory(text, "inv.yml")
    assert inv.nodes == (Node(name="node1", address="192.168.1.5", user="deploy", groups=("dyno_hosts",)),)


def test_other_groups_follow_fleet_groups_and_all_is_dropped() -> None:
    text = textwrap.dedent(
        """\
        all:
          children:
            europe:
              children:
                router_hosts:
                  hosts:
                    node1:
                dyno_hosts:
                  hosts:
                    node1:
        """
    )
    node = parse_inventory(text, "inv.yml").nodes[0]
    assert node.groups == ("router_hosts", "dyno_hosts", "europe")


def test_ipv6_address_is_accepted() -> None:
    node = parse_inventory(one_host(ansible_host="fe80::1"), "inv.yml").nodes[0]
    assert node.address == "fe80::1"
    assert node.known_hosts_name == "fe80::1"


def test_unknown_host_lookup_is_a_usage_error() -> None:
    inv = parse_inventory(VALID, "inv.yml")
    with pytest.raises(UsageError) as info:
        inv.node("node9")
    assert str(info.value) == "no host named 'node9' in inv.yml (hosts: node1, node2, edge)"
    assert inv.select(None) == inv.nodes
    assert inv.select(["edge", "node1"]) == (inv.node("edge"), inv.node("node1"))


# -- errors -----------------------------------------------------------------------
NODE1 = "all.children.dyno_hosts.hosts.node1"


@pytest.mark.parametrize(
    ("port", "shown"),
    [("abc", "'abc'"), (0, "0"), (70000, "70000"), (-1, "-1"), (True, "True"), (22.5, "22.5"), ([22], "[22]")],
)
def test_bad_port(port: object, shown: str) -> None:
    err = config_error(one_host(ansible_port=port))
    assert str(err) == f"inv.yml: {NODE1}.ansible_port: must be a whole number from 1 to 65535, got {shown}"
    assert err.source == "inv.yml"
    assert err.key_path == f"{NODE1}.ansible_port"


def test_boundary_ports_are_accepted() -> None:
    assert parse_inventory(one_host(ansible_port=1), "inv.yml").nodes[0].port == 1
    assert parse_inventory(one_host(ansible_port=65535), "inv.yml").nodes[0].port == 65535


def test_bad_port_from_group_vars_is_reported() -> None:
    text = textwrap.dedent(
        """\
        all:
          children:
            dyno_hosts:
              vars:
                ansible_port: 99999
              hosts:
                node1:
        """
    )
    err = config_error(text)
    assert err.problem == "must be a whole number from 1 to 65535, got 99999"
    assert err.source == "inv.yml"


@pytest.mark.parametrize("user", ["Root", "1admin", "a b", "x" * 33, "root;id"])
def test_bad_user(user: str) -> None:
    err = config_error(one_host(ansible_user=user))
    assert str(err) == (f"inv.yml: {NODE1}.ansible_user: must be a user name (lowercase letters, digits, _ and -), got {user!r}")


def test_user_that_is_not_a_string() -> None:
    err = config_error(one_host(ansible_user=123))
    assert str(err) == f"inv.yml: {NODE1}.ansible_user: must be a user name (lowercase letters, digits, _ and -), got 123"


@pytest.mark.parametrize("name", ["Node1", "node 1", "../x", "-node", "node-", "a" * 64, "node1;rm"])
def test_bad_host_name(name: str) -> None:
    err = config_error(one_host(name=name))
    assert str(err) == f"inv.yml: all.children.dyno_hosts.hosts.{name}: host name {name!r} is not valid: use {HOST_RULE}"


@pytest.mark.parametrize("address", ["bad host!", "-leading.example.com", "", "host/../x", "a;b"])
def test_bad_address(address: str) -> None:
    err = config_error(one_host(ansible_host=address))
    assert str(err) == f"inv.yml: {NODE1}.ansible_host: must be an IP address or DNS name, got {address!r}"


def test_address_that_is_not_a_string() -> None:
    err = config_error(one_host(ansible_host=10))
    assert str(err) == f"inv.yml: {NODE1}.ansible_host: must be an IP address or DNS name, got 10"


@pytest.mark.parametrize(
    ("hvars", "message"),
    [
        ({"fleet_memory_mb": 32}, f"{NODE1}.fleet_memory_mb: must be a whole number from 64 to 67108864, got 32"),
        ({"fleet_memory_mb": "lots"}, f"{NODE1}.fleet_memory_mb: must be a whole number from 64 to 67108864, got 'lots'"),
        ({"fleet_max_dynos": -1}, f"{NODE1}.fleet_max_dynos: must be a whole number from 0 to 100000, got -1"),
        ({"fleet_max_dynos": False}, f"{NODE1}.fleet_max_dynos: must be a whole number from 0 to 100000, got False"),
        ({"ansible_ssh_private_key_file": ""}, f"{NODE1}.ansible_ssh_private_key_file: must be a file path, got ''"),
        ({"ansible_ssh_private_key_file": 7}, f"{NODE1}.ansible_ssh_private_key_file: must be a file path, got 7"),
    ],
)
def test_bad_capacity_and_key_file(hvars: dict[str, Any], message: str) -> None:
    assert str(config_error(one_host(**hvars))) == f"inv.yml: {message}"


def test_unknown_group_key() -> None:
    text = textwrap.dedent(
        """\
        all:
          children:
            dyno_hosts:
              hosts:
                node1:
              host_vars:
                node1: {}
        """
    )
    assert (
        str(config_error(text))
        == "inv.yml: all.children.dyno_hosts.host_vars: unknown key in a group; allowed: hosts, vars, children"
    )


def test_group_that_is_a_list() -> None:
    text = "all:\n  children:\n    dyno_hosts:\n      - node1\n      - node2\n"
    assert str(config_error(text)) == (
        "inv.yml: all.children.dyno_hosts: a group must be a mapping with hosts, vars or children, got a list"
    )


def test_hosts_that_is_a_list() -> None:
    text = "all:\n  children:\n    dyno_hosts:\n      hosts:\n        - node1\n"
    assert str(config_error(text)) == "inv.yml: all.children.dyno_hosts.hosts: must be a mapping of host names, got a list"


def test_children_that_is_a_list() -> None:
    text = "all:\n  children:\n    - dyno_hosts\n"
    assert str(config_error(text)) == "inv.yml: all.children: must be a mapping of groups, got a list"


def test_group_vars_that_are_a_string() -> None:
    text = "all:\n  children:\n    dyno_hosts:\n      vars: port=22\n      hosts:\n        node1:\n"
    assert str(config_error(text)) == "inv.yml: all.children.dyno_hosts.vars: must be a mapping, got the string 'port=22'"


def test_host_vars_that_are_a_string() -> None:
    text = "all:\n  children:\n    dyno_hosts:\n      hosts:\n        node1: 10.0.0.1\n"
    assert str(config_error(text)) == (
        "inv.yml: all.children.dyno_hosts.hosts.node1: host vars must be a mapping, got the string '10.0.0.1'"
    )


def test_bad_group_name() -> None:
    text = "all:\n  children:\n    dyno-hosts:\n      hosts:\n        node1:\n"
    assert str(config_error(text)) == (
        "inv.yml: all.children.dyno-hosts: group name 'dyno-hosts' is not valid: "
        "use letters, digits and underscores, not starting with a digit"
    )


def test_top_level_that_is_a_list() -> None:
    assert str(config_error("- node1\n- node2\n")) == "inv.yml: top level must be a mapping of groups, got a list"


def test_yaml_syntax_error_names_the_line() -> None:
    # `vars:` is indented less than `hosts:` above it: PyYAML notices on line 6.
    text = "all:\n  children:\n    dyno_hosts:\n     hosts:\n        node1:\n      vars: {}\n"
    err = config_error(text)
    assert str(err) == "inv.yml: not valid YAML: line 6: expected <block end>, but found '<block mapping start>'"
    assert err.key_path == ""


def test_yaml_tab_indentation_names_the_line() -> None:
    err = config_error("all:\n\tchildren: {}\n")
    assert str(err) == "inv.yml: not valid YAML: line 2: found character '\\t' that cannot start any token"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(text: str) -> None:
    assert str(config_error(text)) == "inv.yml: inventory is empty; it needs an 'all' group with hosts"


@pytest.mark.parametrize(
    "text",
    [
        "all:\n",
        "all: {}\n",
        "all:\n  vars:\n    ansible_user: root\n",
        "all:\n  children:\n    dyno_hosts:\n    router_hosts:\n      hosts: {}\n",
    ],
)
def test_no_hosts_at_all(text: str) -> None:
    err = config_error(text)
    assert str(err) == "inv.yml: all: defines no hosts; add them under all.children.dyno_hosts.hosts"
    assert err.key_path == "all"


# -- load_inventory -------------------------------------------------------------------
def test_load_inventory_reads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.yml"
    path.write_text(VALID)
    inv = load_inventory(path)
    assert inv == parse_inventory(VALID, str(path))
    assert inv.source == str(path)


def test_load_inventory_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "inv.yml"
    path.write_text(one_host(ansible_port="abc"))
    with pytest.raises(ConfigError) as info:
        load_inventory(str(path))
    assert str(info.value) == f"{path}: {NODE1}.ansible_port: must be a whole number from 1 to 65535, got 'abc'"


def test_load_inventory_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "inventory.yml"
    with pytest.raises(ConfigError) as info:
        load_inventory(path)
    assert str(info.value) == f"{path}: inventory file not found; check the path, or run `fleet lab.up` for a local lab"
    assert info.value.source == str(path)
    assert info.value.key_path == ""
    assert not path.parent.exists()


def test_load_inventory_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_inventory(tmp_path)
    assert str(info.value) == f"{tmp_path}: cannot read inventory: Is a directory"


# -- render_inventory round trip --------------------------------------------------------
def test_render_then_parse_gives_equal_lab_nodes() -> None:
    nodes = tuple(n.as_node() for n in lab_nodes(3))
    text = render_inventory(list(nodes), lab_inventory_vars())
    assert text.startswith("# Written by fleet; Ansible YAML inventory format.\n")
    inv = parse_inventory(text, "lab.yml")
    assert inv.nodes == nodes
    assert dict(inv.vars) == lab_inventory_vars()
    assert [n.groups for n in inv.nodes] == [("dyno_hosts", "router_hosts"), ("dyno_hosts",), ("dyno_hosts", "addon_hosts")]
    assert [n.is_addon_host for n in inv.nodes] == [False, False, True]
    assert dict(inv.vars)["fleet_host_network"] == "169.254.77.0/24"


# -- addon_hosts -------------------------------------------------------------------------
ADDON_INVENTORY = """\
all:
  vars:
    fleet_host_network: 10.0.0.0/24
  children:
    dyno_hosts:
      hosts:
        a: {ansible_host: 10.0.0.1}
        b: {ansible_host: 10.0.0.2}
    addon_hosts:
      hosts:
        b: {}
        db1: {ansible_host: 10.0.0.9}
"""


def test_addon_hosts_group_a_host_in_several_groups() -> None:
    inv = parse_inventory(ADDON_INVENTORY, "inv.yml")
    assert [(n.name, n.groups) for n in inv.nodes] == [
        ("a", ("dyno_hosts",)),
        ("b", ("dyno_hosts", "addon_hosts")),
        ("db1", ("addon_hosts",)),
    ]
    assert [n.name for n in inv.nodes if n.is_addon_host] == ["b", "db1"]
    assert not inv.node("db1").is_dyno_host


def test_addon_host_needs_a_host_network() -> None:
    text = ADDON_INVENTORY.replace("  vars:\n    fleet_host_network: 10.0.0.0/24\n", "")
    assert str(config_error(text)) == (
        "inv.yml: all.children.dyno_hosts.hosts.b.fleet_host_network: an add-on host needs it: "
        "the network its clients (dyno hosts) connect from, e.g. 10.0.0.0/24"
    )


@pytest.mark.parametrize("bad", ["10.0.0.1/24", "nonsense", "'10.0.0.0/33'"])
def test_addon_host_network_must_be_a_network(bad: str) -> None:
    err = config_error(ADDON_INVENTORY.replace("10.0.0.0/24", bad))
    assert str(err).startswith("inv.yml: all.vars.fleet_host_network: must be a network such as 10.0.0.0/24 (host bits zero), got ")


def test_render_then_parse_keeps_ports_and_other_groups() -> None:
    nodes = (
        Node(name="n1", address="10.0.0.1", groups=("dyno_hosts", "router_hosts")),
        Node(name="n2", address="10.0.0.2", port=2222, groups=("dyno_hosts",)),
        Node(name="n3", address="n3.example.com", groups=("router_hosts", "edge")),
    )
    text = render_inventory(nodes, {})
    assert parse_inventory(text, "x.yml").nodes == nodes
    doc = yaml.safe_load(text)
    assert doc["all"]["vars"] == {}
    assert doc["all"]["children"]["dyno_hosts"]["hosts"]["n2"] == {"ansible_host": "10.0.0.2", "ansible_port": 2222}
    assert doc["all"]["children"]["router_hosts"]["hosts"]["n1"] is None  # vars written once, under the first group


def test_render_does_not_write_defaults() -> None:
    text = render_inventory([Node(name="n1", address="10.0.0.1", groups=("dyno_hosts",))], {})
    assert "ansible_port" not in text
    assert "ansible_user" not in text


# -- a trailing newline ($ in a Python regex matches before one) is not part of a valid name ----------
def test_host_name_with_trailing_newline_is_rejected() -> None:
    text = 'all:\n  children:\n    dyno_hosts:\n      hosts:\n        "node1\\n": {}\n'
    # the location is the YAML path as written, so it carries the raw newline; the reason shows it escaped
    assert str(config_error(text)) == (
        f"inv.yml: all.children.dyno_hosts.hosts.node1\n: host name 'node1\\n' is not valid: use {HOST_RULE}"
    )


@pytest.mark.parametrize(
    ("hvars", "message"),
    [
        ({"ansible_host": "10.0.0.1\n"}, f"inv.yml: {NODE1}.ansible_host: must be an IP address or DNS name, got '10.0.0.1\\n'"),
        (
            {"ansible_user": "root\n"},
            f"inv.yml: {NODE1}.ansible_user: must be a user name (lowercase letters, digits, _ and -), got 'root\\n'",
        ),
    ],
)
def test_address_and_user_with_trailing_newline_are_rejected(hvars: dict[str, str], message: str) -> None:
    assert str(config_error(one_host(**hvars))) == message


def test_sibling_group_vars_merge_like_ansible() -> None:
    # `ansible-inventory -i THIS --host node1` says ansible_user: bob
    text = textwrap.dedent(
        """\
        all:
          children:
            dyno_hosts:
              vars: {ansible_user: alice}
              hosts:
                node1:
            router_hosts:
              vars: {ansible_user: bob}
              hosts:
                node1:
        """
    )
    assert parse_inventory(text, "inv.yml").nodes[0].user == "bob"


def test_bad_inherited_var_names_the_key_that_set_it() -> None:
    text = "all:\n  vars:\n    ansible_port: abc\n  children:\n    dyno_hosts:\n      hosts:\n        node1:\n"
    assert config_error(text).key_path == "all.vars.ansible_port"
