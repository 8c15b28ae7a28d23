"""Response Policy Zones (the RPZ draft): the ``[rpz]`` policy of the
configuration, and the names and records of triggers and actions."""

from __future__ import annotations

import ipaddress
import os
import struct
from dataclasses import dataclass
from typing import Any

from dnsbl.wire import TYPE_A, name_to_wire

TYPE_CNAME = 5

#: RPZ actions (the RPZ draft, section 4) by the target of the CNAME they write.
RPZ_ACTIONS = {"nxdomain": ".", "nodata": "*.", "drop": "rpz-drop.",
               "tcp-only": "rpz-tcp-only.", "passthru": "rpz-passthru."}


class ExportError(Exception):
    """Why a zone cannot be exported, in words a user can act on."""


@dataclass(frozen=True)
class RpzPolicy:
    """The ``[rpz]`` table: what each category does to a resolver's clients.

    ``actions`` maps a category (a ledger category's name, or the A value
    its entries answer with, ``127.0.0.3``) to an action: ``nxdomain``,
    ``nodata``, ``drop``, ``tcp-only``, ``passthru``, ``cname:NAME`` (a
    walled garden) or ``a:ADDRESS`` (local data). ``client`` lists the
    categories written as ``rpz-client-ip`` triggers (block those clients)
    instead of ``rpz-ip`` (block answers holding those addresses).
    """

    default: str = "nxdomain"
    actions: tuple[tuple[str, str], ...] = ()
    client: tuple[str, ...] = ()
    allowlist: tuple[str, ...] = ()  # files of networks written as rpz-passthru


def parse_rpz(table: Any, where: str, base: str) -> RpzPolicy:
    """The ``[rpz]`` table of a configuration.

    :raises ValueError: saying which key is wrong and what it must be.
    """
    if not isinstance(table, dict):
        raise ValueError(f"{where}: [rpz] must be a table")
    unknown = set(table) - {"default", "actions", "client", "allowlist"}
    if unknown:
        raise ValueError(f"{where}: unknown setting(s): {', '.join(sorted(unknown))}")
    default = str(table.get("default", "nxdomain"))
    _check_action(default, f"{where}: 'default'")
    actions = table.get("actions", {})
    if not isinstance(actions, dict):
        raise ValueError(f"{where}: 'actions' must be a table of category = action")
    for category, action in actions.items():
        _check_action(str(action), f"{where}: actions.{category}")
    client = table.get("client", [])
    allow = table.get("allowlist", [])
    for key, value in (("client", client), ("allowlist", allow)):
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise ValueError(f"{where}: '{key}' must be a list of strings")
    return RpzPolicy(default, tuple((str(k), str(v)) for k, v in actions.items()),
                     tuple(client), tuple(os.path.join(base, p) for p in allow))


def _check_action(action: str, where: str) -> None:
    kind, _, arg = action.partition(":")
    if action in RPZ_ACTIONS or (kind == "cname" and arg):
        return
    if kind == "a":
        try:
            ipaddress.IPv4Address(arg)
            return
        except ValueError:
            pass
    raise ValueError(f"{where}: unknown action {action!r}; one of {', '.join(RPZ_ACTIONS)}, "
                     "cname:NAME, a:ADDRESS")


def action_rdata(action: str) -> tuple[int, bytes]:
    """(type, rdata) of the record an action writes at a trigger's name."""
    kind, _, arg = action.partition(":")
    if kind == "cname":
        return TYPE_CNAME, name_to_wire(arg)
    if kind == "a":
        return TYPE_A, ipaddress.IPv4Address(arg).packed
    return TYPE_CNAME, name_to_wire(RPZ_ACTIONS[action])


def rpz_ip_name(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> str:
    """The RPZ draft's trigger name of a network: 1.2.3.4/32 -> 32.4.3.2.1,
    2001:db8::/32 -> 32.zz.db8.2001 (the longest run of zero groups as ``zz``)."""
    if network.version == 4:
        return ".".join([str(network.prefixlen), *reversed(str(network.network_address)
                                                           .split("."))])
    groups = [format(g, "x") for g in struct.unpack(">8H", network.network_address.packed)]
    compressed = str(network.network_address)  # RFC 5952 picks the run to squeeze
    if "::" in compressed:
        head, tail = compressed.split("::")
        head_groups = head.split(":") if head else []
        tail_groups = tail.split(":") if tail else []
        groups = [*head_groups, "zz", *tail_groups]
    return ".".join([str(network.prefixlen), *reversed(groups)])
