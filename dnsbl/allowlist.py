"""The RPZ allowlist: the networks a zone's RPZ form writes as ``rpz-passthru``.

They come from the ``[rpz]`` policy's and the ledger's ``allowlist`` files.
What a transfer of the RPZ form sends depends on them, so they are read
where the datasets are, into the snapshot (at start-up and by a reload that
sees their files change), and versioned with the zone's serial; a transfer
never reads them from disk.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from dnsbl.config import ServerConfig
from dnsbl.zonefile import Signature, ZoneFileError, file_signature

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class Allowlist:
    """The networks of the allowlist files, in file order, and the files'
    signatures (mtime, size, inode) as they were when read."""

    files: tuple[str, ...] = ()
    signature: tuple[Signature | None, ...] = ()
    networks: tuple[Network, ...] = ()


def allowlist_files(config: ServerConfig) -> tuple[str, ...]:
    """The allowlist files of the RPZ form: the ``[rpz]`` policy's, then the ledger's."""
    return (*config.rpz.allowlist, *(config.ledger.allowlist if config.ledger else ()))


def served_allowlist_files(config: ServerConfig) -> tuple[str, ...]:
    """The allowlist files ``dnsbl serve`` loads and watches: none unless a
    zone has an RPZ form."""
    return allowlist_files(config) if any(z.rpz for z in config.zones) else ()


def signature(files: tuple[str, ...]) -> tuple[Signature | None, ...]:
    return tuple(file_signature(path) for path in files)


def networks_in(path: str) -> list[tuple[Network, int]]:
    """The networks of one allowlist file (one address or network a line,
    ``#`` comments), each with its line number.

    :raises ZoneFileError: ``file:line: bad address ...`` for a bad line
        (reason ``parse``), ``file: cannot read ...`` for a file that cannot
        be read (``open``).
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise ZoneFileError(path, 0, f"cannot read the allowlist: {exc.strerror or exc}",
                            "open") from None
    except UnicodeDecodeError as exc:
        raise ZoneFileError(path, 0, f"cannot read the allowlist: {exc}", "open") from None
    networks = []
    for lineno, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            networks.append((ipaddress.ip_network(text.split()[0]), lineno))
        except ValueError:
            raise ZoneFileError(path, lineno, f"bad address {text!r}", "parse") from None
    return networks


def load_allowlist(files: tuple[str, ...]) -> Allowlist:
    """Read every one of ``files``, the whole list or nothing.

    :raises ZoneFileError: as :func:`networks_in`.
    """
    # Taken before reading: a file changed while read differs at the next check.
    before = signature(files)
    networks = tuple(network for path in files for network, _lineno in networks_in(path))
    return Allowlist(files, before, networks)
