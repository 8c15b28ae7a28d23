"""Installing for production: `make install` into a temporary prefix, the
installed unit verified by systemd, the man pages, the migration table."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess

import pytest

from dnsbl import __version__
from dnsbl.cli import build_parser
from tests.helpers import ROOT

pytestmark = pytest.mark.slow  # builds a virtualenv and installs into it

MAN_PAGES = ("docs/dnsbl.8", "docs/dnsbl.toml.5")


@pytest.fixture
def installed(tmp_path):
    """`make install` into tmp_path (no root), and `make uninstall` after."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dirs = {"PREFIX": tmp_path / "opt" / "dnsbl", "BINDIR": tmp_path / "bin",
            "MANDIR": tmp_path / "man"}
    args = [f"{key}={value}" for key, value in dirs.items()]
    result = subprocess.run(["make", "-C", str(ROOT), "install", *args], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    yield dirs
    subprocess.run(["make", "-C", str(ROOT), "uninstall", *args], capture_output=True,
                   timeout=120)


@pytest.mark.slow
def test_make_install_gives_a_working_command_a_verified_unit_and_man_pages(installed,
                                                                            tmp_path):
    prefix, bindir, mandir = installed["PREFIX"], installed["BINDIR"], installed["MANDIR"]
    command = bindir / "dnsbl"
    assert command.is_symlink() and os.readlink(command) == f"{prefix}/bin/dnsbl"
    version = subprocess.run([str(command), "--version"], capture_output=True, text=True,
                             timeout=60)
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"dnsbl {__version__}"
    # The installed package, with its dependencies, serves the bundled data.
    check = subprocess.run([str(command), "check", "--strict", "--config", "zones/dnsbl.toml"],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr
    assert (mandir / "man8" / "dnsbl.8").read_bytes() == (ROOT / "docs/dnsbl.8").read_bytes()
    assert (mandir / "man5" / "dnsbl.toml.5").is_file()
    unit = prefix / "lib" / "systemd" / "system" / "dnsbl.service"
    assert f"ExecStart={prefix}/bin/dnsbl serve " in unit.read_text()
    assert (unit.parent / "dnsbl.socket").is_file()
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian package systemd): unit not verified")
    # Documentation= is checked with man(1), which finds the pages in MANDIR.
    man_check = [] if shutil.which("man") else ["--man=no"]
    verify = subprocess.run([analyze, "verify", *man_check, str(unit)], capture_output=True,
                            text=True, timeout=120,
                            env={**os.environ, "MANPATH": str(mandir)})
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stderr == "", verify.stderr


@pytest.mark.slow
def test_make_uninstall_removes_what_install_put(installed):
    args = [f"{key}={value}" for key, value in installed.items()]
    result = subprocess.run(["make", "-C", str(ROOT), "uninstall", *args], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not installed["PREFIX"].exists()
    assert not (installed["BINDIR"] / "dnsbl").is_symlink()
    assert not any(p.is_file() for p in installed["MANDIR"].rglob("*"))


def test_make_install_refuses_a_prefix_holding_other_files(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    (tmp_path / "precious.txt").write_text("not a virtualenv\n")
    result = subprocess.run(["make", "-C", str(ROOT), "install", f"PREFIX={tmp_path}",
                             f"BINDIR={tmp_path}/bin", f"MANDIR={tmp_path}/man"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "is not a dnsbl virtualenv; choose another PREFIX" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt"]


def test_the_unit_runs_what_make_install_installs_and_documents_dnsbl():
    unit = (ROOT / "systemd/dnsbl.service").read_text()
    makefile = (ROOT / "Makefile").read_text()
    prefix = re.search(r"^PREFIX\s*\?=\s*(\S+)", makefile, re.M)
    assert prefix is not None
    assert f"ExecStart={prefix.group(1)}/bin/dnsbl serve " in unit
    docs = re.search(r"^Documentation=(.*)$", unit, re.M)
    assert docs is not None and docs.group(1).split() == ["man:dnsbl(8)", "man:dnsbl.toml(5)"]


@pytest.mark.parametrize("page", MAN_PAGES)
def test_man_pages_render_without_warnings(page):
    if shutil.which("man") is None:
        pytest.skip("man is missing (Debian packages man-db and groff-base)")
    result = subprocess.run(["man", "--warnings", "-l", str(ROOT / page)], capture_output=True,
                            text=True, timeout=60, env={**os.environ, "MANWIDTH": "80"})
    assert result.returncode == 0
    assert result.stderr == ""
    assert "SEE ALSO" in result.stdout


def _flags(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: [flag for action in command._actions for flag in action.option_strings
                   if flag.startswith("--") and flag != "--help"]
            for name, command in sub.choices.items()}


def test_the_man_page_documents_every_command_and_flag():
    page = (ROOT / "docs/dnsbl.8").read_text()
    for command, flags in _flags(build_parser()).items():
        roff = command.replace("-", "\\-")
        assert f".B dnsbl {roff}\n" in page and f".B {roff}\n" in page, command
        for flag in flags:
            assert flag.replace("-", "\\-") in page, f"{command} {flag}"


def test_the_configuration_page_documents_every_setting():
    from dnsbl.config import _TOP_KEYS, _ZONE_KEYS

    page = (ROOT / "docs/dnsbl.toml.5").read_text().replace("\\-", "-")
    for key in sorted(_TOP_KEYS | _ZONE_KEYS):
        written = "[[zone]]" if key == "zone" else f"[{key}]" if key in ("rrl", "ledger") else key
        assert re.search(rf"^\.(B|BR) .*{re.escape(written)}", page, re.M), key


RBLDNSD_FLAGS = ("-b", "-4", "-6", "-t", "-c", "-e", "-r", "-w", "-u", "-p", "-n", "-q", "-f",
                 "-l", "-s", "-v", "-a", "-C", "-d", "-x", "-F")


def test_readme_maps_every_rbldnsd_flag():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Migrating from rbldnsd")
    section = readme[start:readme.index("\n## ", start + 1)]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    for flag in RBLDNSD_FLAGS:
        assert any(re.match(rf"\| `{flag}[ `]", row) or f"`{flag}`" in row.split("|")[1]
                   for row in rows), flag
    assert any(row.startswith("| `zone:type:file") for row in rows)
    if shutil.which("rbldnsd"):  # and nothing its own help lists is left out
        usage = subprocess.run(["rbldnsd", "-h"], capture_output=True, text=True, timeout=30)
        listed = set(re.findall(r"^ (-\w)\b", usage.stdout + usage.stderr, re.M))
        mapped = {f for f in listed if any(f"`{f}" in row.split("|")[1] for row in rows)}
        assert listed - {"-h"} <= mapped, listed - mapped


def test_license_and_changelog():
    license_text = (ROOT / "LICENSE").read_text()
    assert license_text.startswith("MIT License") and "dnsbl authors" in license_text
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "keepachangelog.com" in changelog
    assert "## [Unreleased]" in changelog and f"## [{__version__}]" in changelog
