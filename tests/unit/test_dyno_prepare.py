"""fleet/dyno/prepare.py, the pure parts: the host interface's name and the choice of a dyno's address."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from fleet.dyno.prepare import addresses_in_use, dyno_routes, gateway, host_interface, pick_address

NET = IPv4Network("169.254.128.0/18")
ROUTES = """default via 169.254.77.1 dev host0 proto static
169.254.77.0/24 dev host0 proto kernel scope link src 169.254.77.12
169.254.128.2 dev fd0123456789ab scope link
169.254.128.4 dev fdaaaaaaaaaaaa scope link
169.254.128.3 dev host0 scope link
"""


def test_addresses_in_use_are_the_routes_to_dyno_interfaces() -> None:
    assert addresses_in_use(ROUTES) == {IPv4Address("169.254.128.2"), IPv4Address("169.254.128.4")}


def test_the_lowest_free_address_after_the_gateway() -> None:
    assert gateway(NET) == IPv4Address("169.254.128.1")
    assert pick_address(NET, set()) == IPv4Address("169.254.128.2")
    assert pick_address(NET, addresses_in_use(ROUTES)) == IPv4Address("169.254.128.3")


def test_a_full_network_is_an_error() -> None:
    small = IPv4Network("169.254.200.0/30")  # .1 gateway, .2 the only dyno address
    with pytest.raises(RuntimeError) as info:
        pick_address(small, {IPv4Address("169.254.200.2")})
    assert str(info.value) == "no free dyno address left in 169.254.200.0/30"


def test_host_interface_names_fit_and_refuse_anything_but_hex() -> None:
    assert host_interface("0123456789abcdef") == "fd0123456789ab"
    assert len(host_interface("0123456789abcdef")) <= 15
    for bad in ("", "../x", "ABC", "12 34"):
        with pytest.raises(ValueError):
            host_interface(bad)


def test_a_dyno_routes_what_its_host_reaches() -> None:
    assert dyno_routes(ROUTES, NET) == ["default"]
    lab_node = """169.254.77.0/24 dev host0 proto kernel scope link src 169.254.77.12
169.254.128.2 dev fd0123456789ab scope link
"""
    # no default route on a lab node: a dyno reaches the bridge only, and anything else fails at once
    assert dyno_routes(lab_node, NET) == ["169.254.77.0/24"]
    # a host whose network is not up yet (a dyno starting at boot): default, or the dyno could never answer
    assert dyno_routes("", NET) == ["default"]
    assert dyno_routes("169.254.128.2 dev fd0123456789ab scope link\n", NET) == ["default"]
