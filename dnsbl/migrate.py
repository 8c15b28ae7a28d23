"""`dnsbl from-rbldnsd`: an rbldnsd command line as the equivalent dnsbl TOML."""

from __future__ import annotations

import getopt
import json
import os
from collections.abc import Sequence

from dnsbl.config import ConfigError, ServerConfig, parse_listen, parse_zone_spec, with_ttl
from dnsbl.zonefile import parse_time

#: rbldnsd's getopt string (rbldnsd.c), so its command lines parse as it parses them.
_OPTIONS = "u:r:b:w:t:c:p:nel:qs:h46dvaAfF:Cx:X:"

#: What has no setting here, and why, for the comments of the output.
_DROPPED = {
    "-u": "dnsbl never switches user: the systemd unit runs it as a dynamic user",
    "-p": "no pid file: systemd tracks the main process, and `dnsbl ctl status` gives it",
    "-n": "dnsbl always stays in the foreground",
    "-q": "addresses are bound first, then the data loads (allow_missing = true to start "
          "without a zone that cannot load)",
    "-f": "reloads are always parsed aside while the loaded data answers",
    "-e": "a CIDR with host bits set is always skipped with a file:line warning; "
          "`dnsbl check` lists them",
    "-4": "each listen address binds its own family",
    "-6": "each listen address binds its own family",
    "-v": "version.bind (class CH) is always REFUSED",
    "-a": "positive answers never carry NS records (as -a)",
    "-A": "positive answers never carry NS records (as -a)",
    "-C": "gzip files are always detected by their first bytes",
    "-F": "logs go to standard error (the journal under systemd, with syslog priorities)",
    "-x": "no extensions",
    "-X": "no extensions",
    "-s": "no stats file: the Prometheus metrics (metrics = \"HOST:PORT\") count queries "
          "by zone and rcode, and SIGUSR1 logs the statistics",
    "-d": "no dump to BIND format",
}


def _string(text: str) -> str:
    return json.dumps(text)  # a JSON string is a TOML basic string


def _where(path: str, root: str, workdir: str) -> str:
    """Where rbldnsd finds ``path`` after ``chroot(root)`` and ``chdir(workdir)``,
    as an absolute name, since TOML file names are relative to the TOML file."""
    if root:
        inside = path if os.path.isabs(path) else os.path.join(workdir or "/", path)
        return os.path.normpath(os.path.join(root, inside.lstrip("/")))
    return os.path.abspath(os.path.join(workdir, path))


def rbldnsd_to_toml(argv: Sequence[str]) -> str:
    """The dnsbl configuration that serves what ``rbldnsd argv...`` serves.

    :raises ConfigError: for a command line rbldnsd would refuse too, or a
        value dnsbl cannot take (a bad address, TTL or zone).
    """
    try:
        options, zones = getopt.gnu_getopt(list(argv), _OPTIONS)
    except getopt.GetoptError as exc:
        raise ConfigError(f"from-rbldnsd: {exc}") from None
    if not zones:
        raise ConfigError("from-rbldnsd: no zones (rbldnsd needs NAME:TYPE:FILE[,FILE...])")
    config = ServerConfig()
    lines: list[str] = []
    notes: list[str] = []
    listen: list[str] = []
    root = workdir = ""
    for flag, value in options:  # where the files are first: -r and -w may come last
        if flag == "-r":
            root = value
        elif flag == "-w":
            workdir = value
    for flag, value in options:
        if flag == "-b":
            parse_listen(value)  # refused here, not when the output is used
            listen.append(value)
        elif flag == "-t":
            config = with_ttl(config, value, "-t")
            lines.append(f"ttl = {_string(value)}")
        elif flag == "-c":
            try:
                seconds = parse_time(value)
            except ValueError:
                raise ConfigError(f"from-rbldnsd: -c: bad time {value!r}") from None
            lines.append(f"check_interval = {seconds}")
        elif flag == "-l":
            name = value.lstrip("+")
            if name == "-":
                notes.append(f"-l {value}: no query log to standard output; "
                             "query_log names a file")
            else:
                lines.append(f"query_log = {_string(_where(name, root, workdir))}"
                             "  # every query, as JSON lines")
        elif flag in ("-r", "-w"):
            continue
        elif flag == "-h":
            raise ConfigError("from-rbldnsd: give rbldnsd's options and zones, e.g. "
                              "-b 127.0.0.1/53 -t 35m bl.example.org:ip4set:bl.zone")
        else:
            notes.append(f"{flag}{' ' + value if value else ''}: {_DROPPED[flag]}")
    if listen:
        lines.insert(0, f"listen = [{', '.join(map(_string, listen))}]")
    else:
        notes.append("no -b: rbldnsd requires one; dnsbl's default is 127.0.0.1:5300")
    if root:
        notes.append(f"-r {root}: no chroot; the unit's sandboxing confines dnsbl, and the "
                     "file names below are where rbldnsd found them")
    out = ["# dnsbl configuration equivalent to: rbldnsd " + " ".join(argv)]
    out += [f"# {note}" for note in notes]
    out += lines
    tables: dict[str, list[tuple[str, list[str]]]] = {}
    for spec in zones:
        zone = parse_zone_spec(spec)  # the same checks as --zone
        dataset = zone.datasets[0]
        files = [_where(f, root, workdir) for f in dataset.files]
        if not zone.name:
            out.append(f"acl = [{', '.join(map(_string, files))}]")
            continue
        tables.setdefault(zone.name, []).append((dataset.type, files))
    for name, datasets in tables.items():
        out += ["", "[[zone]]", f"name = {_string(name)}"]
        if len(datasets) == 1:
            kind, files = datasets[0]
            out += [f"type = {_string(kind)}", f"files = [{', '.join(map(_string, files))}]"]
        else:
            out.append("datasets = [")
            out += [f"  {{ type = {_string(kind)}, files = [{', '.join(map(_string, files))}] }},"
                    for kind, files in datasets]
            out.append("]")
    return "\n".join(out) + "\n"
