"""/metrics, /healthz and /readyz from a real running server after real queries."""

from __future__ import annotations

import gzip
import time

import dns.message
import dns.rcode
import pytest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)

from dnsbl.answer import FAST_PATH
from dnsbl.config import Listen, ServerConfig, ZoneConfig, parse_zone_spec
from dnsbl.ledger.config import LedgerConfig
from dnsbl.metrics import SERIES, build_registry, declared_fold, fold
from tests.helpers import (
    ROOT,
    ServerThread,
    data,
    fetch,
    run_cli,
    samples,
    scaled,
    stop_all,
    timestamp_line,
    value,
    wait_for,
    write,
)


@pytest.fixture
def metered(tmp_path):
    started = []

    def _start(lines, max_data_age=None, interval=0.1, kind="ip4set"):
        path = tmp_path / f"bl{len(started)}.zone"
        write(path, lines)
        spec = parse_zone_spec(f"bl.test:{kind}:{path}")
        config = ServerConfig(listen=(Listen("127.0.0.1", 0),), check_interval=interval,
                              zones=(ZoneConfig("bl.test", spec.datasets,
                                                max_data_age=max_data_age),))
        thread = ServerThread(config, metrics=Listen("127.0.0.1", 0))
        started.append(thread)
        client = thread.start()
        return thread, client, thread.server.metrics_port, path

    yield _start
    stop_all([thread.stop for thread in started])


def test_query_counts_move_exactly(metered):
    thread, client, port, path = metered(data("listed", 50))
    dataset = f"ip4set:{path}"
    # Each asked once (however long the answer takes here): one asked again
    # would count twice.
    once = scaled(10)
    for i in range(7):
        assert client.query(f"{i + 1}.0.0.10.bl.test", timeout=once).answer
    for i in range(3):
        assert client.query(f"{i + 1}.9.9.10.bl.test",
                            timeout=once).rcode() == dns.rcode.NXDOMAIN
    client.query("2.0.0.127.bl.test", "TXT", tcp=True)
    client.query("2.0.0.127.elsewhere.test", "A", timeout=once)  # refused: in no zone
    found = samples(port)
    assert value(found, "dnsbl_lookups_total", zone="bl.test", result="listed") == 8
    assert value(found, "dnsbl_lookups_total", zone="bl.test", result="not_listed") == 3
    assert value(found, "dnsbl_dns_requests_total", zone="bl.test", qtype="A", proto="udp") == 10
    assert value(found, "dnsbl_dns_requests_total", zone="bl.test", qtype="TXT",
                 proto="tcp") == 1
    assert value(found, "dnsbl_dns_responses_total", zone="bl.test", rcode="NOERROR") == 8
    assert value(found, "dnsbl_dns_responses_total", zone="bl.test", rcode="NXDOMAIN") == 3
    assert value(found, "dnsbl_dns_responses_total", zone="", rcode="REFUSED") == 1
    assert value(found, "dnsbl_zone_entries", zone="bl.test") == 50
    assert value(found, "dnsbl_dataset_entries", dataset=dataset) == 50
    assert value(found, "dnsbl_dataset_reloads_total", dataset=dataset) == 1
    # The start-up load is timed too, not only the reloads after it.
    assert 0 < value(found, "dnsbl_dataset_reload_duration_seconds", dataset=dataset) < 30
    assert value(found, "dnsbl_dataset_exclusions", dataset=dataset) == 0
    assert value(found, "dnsbl_zone_loaded", zone="bl.test") == 1
    assert value(found, "dnsbl_zone_expired", zone="bl.test") == 0
    assert value(found, "dnsbl_zone_soa_serial", zone="bl.test") == int(path.stat().st_mtime)
    assert 0 <= value(found, "dnsbl_dataset_data_age_seconds", dataset=dataset) < 60
    assert ("dnsbl_build_info", frozenset({
        "version": __import__("dnsbl").__version__,
        "python": __import__("platform").python_version(), "loop": "uvloop",
        "answering": FAST_PATH}.items())) in found
    assert any(name == "process_resident_memory_bytes" for name, _ in found)
    # Labels come from bounded sets: never a client address or a query name.
    label_values = {text for _name, labels in found for _label, text in labels}
    assert not any("127.0.0.1" in text or "0.0.10" in text for text in label_values)


def test_drops_are_counted_by_reason(tmp_path, cleanup):
    import socket

    import dns.exception

    acl, zone = tmp_path / "acl", tmp_path / "bl.zone"
    write(acl, ["127.0.0.2 :ignore"])
    write(zone, data("x"))
    config = ServerConfig(listen=(Listen("127.0.0.1", 0),), zones=(
        ZoneConfig("bl.test", parse_zone_spec(f"bl.test:ip4set:{zone}").datasets
                   + parse_zone_spec(f"bl.test:acl:{acl}").datasets),))
    thread = ServerThread(config, metrics=Listen("127.0.0.1", 0))
    client = thread.start()
    cleanup.callback(thread.stop)
    port = thread.server.metrics_port
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"\x00\x01", (client.host, client.port))  # shorter than a header
        query = bytearray(dns.message.make_query("2.0.0.127.bl.test", "A").to_wire())
        query[2] |= 0x80  # QR: a response, as a reflected packet would be
        s.sendto(bytes(query), (client.host, client.port))
    with pytest.raises(dns.exception.Timeout):  # the ACL ignores this client
        client.query("2.0.0.127.bl.test", source="127.0.0.2", timeout=0.5)
    # Counted, so it was seen and not answered, however slow this host.
    wait_for(lambda: [value(samples(port), "dnsbl_dns_dropped_total", reason=r)
                      for r in ("short", "response", "acl", "send")] == [1, 1, 1, 0])


def test_failed_reload_counts_and_keeps_the_timestamp(metered):
    thread, client, port, path = metered(data("good", 100))
    dataset = f"ip4set:{path}"
    before = samples(port)
    stamp = value(before, "dnsbl_dataset_reload_timestamp_seconds", dataset=dataset)
    assert value(before, "dnsbl_dataset_reload_failures_total", dataset=dataset,
                 reason="open") == 0
    path.unlink()
    wait_for(lambda: value(samples(port), "dnsbl_dataset_reload_failures_total",
                           dataset=dataset, reason="open") == 1)
    after = samples(port)
    assert value(after, "dnsbl_dataset_reload_timestamp_seconds", dataset=dataset) == stamp
    assert value(after, "dnsbl_dataset_reloads_total", dataset=dataset) == 1
    write(path, data("again", 100))
    wait_for(lambda: value(samples(port), "dnsbl_dataset_reloads_total", dataset=dataset) == 2)
    assert value(samples(port), "dnsbl_dataset_reload_timestamp_seconds",
                 dataset=dataset) > stamp


def failures(found: dict, dataset: str) -> dict[str, float]:
    """The reload failures of ``dataset`` counted so far, by reason, whatever
    reasons the collector knows of (a reason it never emits counts nothing)."""
    return {dict(labels)["reason"]: count for (name, labels), count in found.items()
            if name == "dnsbl_dataset_reload_failures_total"
            and dict(labels)["dataset"] == dataset and count}


@pytest.mark.parametrize("kind, damage, reason", [
    ("ip4set", "truncated gzip", "read"),
    ("ip4set", "future $TIMESTAMP", "timestamp"),
    ("ip4set", "90% shrunk", "shrink"),
    ("combined", "data before $DATASET", "parse"),
    ("combined", "an acl section", "parse"),
])
def test_each_failure_reason_is_its_own_series(metered, kind, damage, reason):
    section = ["$DATASET ip4set @"] if kind == "combined" else []
    thread, client, port, path = metered(section + data("good", 100), kind=kind)
    dataset = f"{kind}:{path}"
    if damage == "truncated gzip":
        path.write_bytes(gzip.compress("\n".join(data("gz", 100)).encode())[:40])
    elif damage == "future $TIMESTAMP":
        stamp = time.strftime("%Y:%m:%d:%H:%M:%S", time.gmtime(time.time() + 86400))
        write(path, [f"$TIMESTAMP {stamp}"] + data("later", 100))
    elif damage == "data before $DATASET":
        write(path, ["127.0.0.3"] + section + data("later", 100))
    elif damage == "an acl section":
        write(path, section + data("later", 100) + ["$DATASET acl @", "127.0.0.1"])
    else:
        write(path, data("shrunk", 10))
    wait_for(lambda: failures(samples(port), dataset) == {reason: 1},
             what=f"one failure counted under {reason!r}")
    found = samples(port)
    assert value(found, "dnsbl_dataset_reload_failures_total", dataset=dataset,
                 reason=reason) == 1
    assert value(found, "dnsbl_dataset_reloads_total", dataset=dataset) == 1
    assert client.a("2.0.0.127.bl.test") == ["127.0.0.2"]  # the previous data serves


@pytest.mark.slow
def test_exclusions_and_expiry_are_exported(metered):
    # Time to start and scrape once while it is fresh, even on a busy machine.
    thread, client, port, path = metered(
        [timestamp_line(expires_in=4)] + data("x") + ["!10.0.0.1", "!10.0.0.2"])
    dataset = f"ip4set:{path}"
    found = samples(port)
    assert value(found, "dnsbl_dataset_exclusions", dataset=dataset) == 2
    assert value(found, "dnsbl_zone_expired", zone="bl.test") == 0
    wait_for(lambda: value(samples(port), "dnsbl_zone_expired", zone="bl.test") == 1)
    assert value(samples(port), "dnsbl_zone_loaded", zone="bl.test") == 1  # loaded, but stale
    write(path, data("fresh"))
    wait_for(lambda: value(samples(port), "dnsbl_zone_expired", zone="bl.test") == 0)
    assert value(samples(port), "dnsbl_dataset_exclusions", dataset=dataset) == 0


def test_openmetrics_on_request(metered):
    thread, client, port, path = metered(data("x"))
    client.a("2.0.0.127.bl.test")
    status, content_type, text = fetch(port, "/metrics", "application/openmetrics-text")
    assert status == 200 and content_type.startswith("application/openmetrics-text")
    # prometheus-client's own OpenMetrics parser, which insists on "# EOF" and
    # on the format's rules for counters, units and label syntax.
    families = {f.name: f for f in openmetrics_families(text)}
    requests = families["dnsbl_dns_requests"]
    assert requests.type == "counter"
    found = {(s.name, frozenset(s.labels.items())): s.value for s in requests.samples}
    assert found[("dnsbl_dns_requests_total", frozenset(
        {"zone": "bl.test", "qtype": "A", "proto": "udp"}.items()))] == 1
    assert families["dnsbl_dataset_reload_duration_seconds"].type == "gauge"
    assert families["dnsbl_build_info"].samples[0].value == 1


def test_health_and_readiness(metered):
    thread, client, port, path = metered([timestamp_line(expires_in=2)] + data("x"))
    assert fetch(port, "/healthz")[0] == 200
    assert fetch(port, "/readyz")[0] == 200
    wait_for(lambda: fetch(port, "/readyz")[0] == 503)
    assert "data expired" in fetch(port, "/readyz")[2]
    assert fetch(port, "/healthz")[0] == 200  # alive, just not ready
    write(path, data("fresh"))
    wait_for(lambda: fetch(port, "/readyz")[0] == 200)
    assert fetch(port, "/nope")[0] == 404


def test_stale_data_is_not_ready(metered, tmp_path):
    thread, client, port, path = metered(data("x"), max_data_age=3600)
    assert fetch(port, "/readyz")[0] == 200
    thread2, client2, port2, path2 = metered(data("x"), max_data_age=3600, interval=0)
    old = time.time() - 7200
    import os

    os.utime(path2, (old, old))
    thread2.check()  # the mtime moved: reloaded, and now two hours old
    status, _, body = fetch(port2, "/readyz")
    assert status == 503 and "over max_data_age 3600s" in body


def test_every_series_is_documented_in_the_readme():
    import re

    readme = (ROOT / "README.md").read_text()
    for name, series in SERIES.items():
        assert f"`{name}`" in readme, name
        assert series.help in readme, name
    # The list of labels names every label the table uses.
    flowing = " ".join(readme.split())
    listed = flowing.split("labels come only from bounded sets (")[1].split(")")[0]
    used = {label.strip() for line in readme.splitlines() if line.startswith("| `dnsbl_")
            for label in line.split("|")[3].split(",") if label.strip()}
    assert used and used <= set(re.findall(r"[a-z]+", listed)), (used, listed)


def test_every_series_a_worker_sends_says_how_it_folds(metered, tmp_path):
    """With --workers the supervisor folds each series over the workers by the
    rule declared next to it (SERIES, OTHER_FOLDS): a series added without one
    fails here, instead of being folded by whatever default fits it least."""
    thread, _client, _port, _path = metered(data("x"))
    ledger = LedgerConfig(str(tmp_path / "ledger.db"), str(tmp_path / "published"))
    # The registry a worker builds (with a ledger configured: every collector).
    registry = build_registry(thread.server, thread.server.loop_name, ledger)
    families = list(registry.collect())
    names = {family.name for family in families}
    assert {"dnsbl_dns_requests", "process_open_fds", "python_info",
            "dnsbl_ledger_held_back"} <= names
    assert sorted(f.name for f in families if declared_fold(f) is None) == []
    # Only the supervisor's own series have none: a worker never sends them.
    assert sorted(name for name, series in SERIES.items() if series.fold is None) == [
        "dnsbl_worker_restarts_total", "dnsbl_workers"]


def test_fold_uses_each_series_rule_and_an_explicit_default():
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    def sent(serial, connections, age, dropped, other_gauge, other_counter):
        families = []
        for name, number in (("dnsbl_zone_soa_serial", serial),
                             ("dnsbl_tcp_connections", connections),
                             ("dnsbl_dataset_data_age_seconds", age),
                             ("not_declared_gauge", other_gauge)):
            family = GaugeMetricFamily(name, "help")
            family.add_metric([], number)
            families.append(family)
        for name, number, created in (("dnsbl_dns_dropped", dropped, 200.0 - dropped),
                                      ("not_declared", other_counter, None)):
            counter = CounterMetricFamily(name, "help")
            counter.add_metric([], number, created=created)
            families.append(counter)
        return families

    folded = {sample.name: sample.value
              for family in fold([sent(7, 3, 10, 2, 1, 4), sent(5, 4, 20, 3, 9, 5)])
              for sample in family.samples}
    assert folded == {
        "dnsbl_zone_soa_serial": 5,  # min: the lowest serial served
        "dnsbl_tcp_connections": 7,  # sum: each worker holds its own
        "dnsbl_dataset_data_age_seconds": 20,  # max: the oldest data served
        "dnsbl_dns_dropped_total": 5, "dnsbl_dns_dropped_created": 197.0,  # the first
        # Undeclared: a counter is summed, anything else the highest value.
        "not_declared_gauge": 9, "not_declared_total": 9}


def dashboard_queries(node) -> list[str]:
    """Every PromQL text in the dashboard: panel targets and variable queries."""
    if isinstance(node, list):
        return [q for item in node for q in dashboard_queries(item)]
    if not isinstance(node, dict):
        return []
    found = [v for k, v in node.items() if k in ("expr", "definition") and isinstance(v, str)]
    return found + [q for v in node.values() for q in dashboard_queries(v)]


def test_every_dashboard_series_is_in_a_real_scrape(process, tmp_path, zone_file):
    import json
    import re

    dashboard = json.loads((ROOT / "contrib" / "grafana" / "dnsbl.json").read_text())
    queries = dashboard_queries(dashboard)
    used = {name for q in queries for name in re.findall(r"\bdnsbl_[a-z0-9_]+", q)}
    for needed in ("dnsbl_workers", "dnsbl_worker_restarts_total",
                   "dnsbl_query_log_dropped_total", "dnsbl_dns_dropped_total"):
        assert needed in used, needed
    assert any('reason="send"' in q for q in queries)
    # Every series the dashboard reads must be one a supervisor serves.
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0", "--workers", "2",
                     "--query-log", str(tmp_path / "queries.jsonl"))
    server.wait_listening().a("2.0.0.127.bl.test")
    found = samples(server.metrics_port)
    scraped = {name for name, _labels in found}
    assert sorted(used - scraped) == []
    assert value(found, "dnsbl_dns_dropped_total", reason="send") == 0


def test_head_gets_the_headers_without_a_body(metered):
    import socket

    thread, client, port, path = metered(data("x"))
    for target, status in (("/metrics", 200), ("/healthz", 200), ("/readyz", 200),
                           ("/nope", 404)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(f"HEAD {target} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            received = b""
            while chunk := sock.recv(65536):  # the server closes after one answer
                received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
        assert body == b"", target
        # The length is the GET body's, as RFC 9110 9.3.2 allows.
        length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        assert length > 0
        if target != "/metrics":  # the only one that changes from one request to the next
            assert length == len(fetch(port, target)[2].encode())


def test_metrics_connections_are_capped_so_dns_over_tcp_keeps_answering(process, zone_file):
    """With the metrics port flooded past the server's file limit, DNS over TCP
    still answers: connections past the cap get a 503 and are closed at once."""
    import os
    import resource
    import socket
    import sys

    from dnsbl.metrics import MAX_CONNECTIONS

    limit = 256  # the server's open-file limit; the flood is past it
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < limit + 100:
        pytest.skip(f"this test needs {limit + 100} open files; the hard limit is {hard}")
    shim = ("import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({limit}, {limit})); "
            "os.execv(sys.argv[1], sys.argv[1:])")
    server = process("--zone", f"bl.test:ip4set:{zone_file(['127.0.0.2'])}",
                     "--listen", "127.0.0.1:0", "--metrics", "127.0.0.1:0",
                     command=[sys.executable, "-c", shim])
    client = server.wait_listening()
    held: list[socket.socket] = []
    closed: set[int] = set()
    refused = 0

    def still_open() -> int:
        nonlocal refused
        for i, sock in enumerate(held):
            if i in closed:
                continue
            try:
                data = sock.recv(4096)
            except BlockingIOError:
                continue
            if data.startswith(b"HTTP/1.1 503"):
                refused += 1
            closed.add(i)
        return len(held) - len(closed)

    try:
        for _ in range(limit + 44):
            sock = socket.create_connection(("127.0.0.1", server.metrics_port), timeout=10)
            sock.setblocking(False)
            held.append(sock)
        # DNS over TCP gets a descriptor while the flood is held.
        reply = client.query("2.0.0.127.bl.test", tcp=True, timeout=5)
        assert [rd.address for rrset in reply.answer for rd in rrset] == ["127.0.0.2"]
        # Those under the cap wait for a request (up to the header timeout);
        # the rest were told why (a slow machine may let a few more in).
        wait_for(lambda: still_open() <= MAX_CONNECTIONS, timeout=30)
        assert refused >= len(held) - 2 * MAX_CONNECTIONS
        assert len(os.listdir(f"/proc/{server.proc.pid}/fd")) < limit // 2
        reply = client.query("2.0.0.127.bl.test", tcp=True, timeout=5)
        assert [rd.address for rrset in reply.answer for rd in rrset] == ["127.0.0.2"]
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: fetch(server.metrics_port, "/healthz")[0] == 200, timeout=30)
    assert server.stop() == 0


@pytest.mark.parametrize("workers", ["1", "2"])
def test_metrics_port_clash_stops_start_up_before_the_zones_load(tmp_path, workers):
    """The README's promise: the addresses are bound before the data loads."""
    import socket


    zone = tmp_path / "big.zone"
    # Long enough to load that a clash found after it would show "loaded" lines.
    zone.write_text("".join(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}\n"
                            for i in range(200_000)))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = run_cli("serve", "--zone", f"bl.test:ip4set:{zone}", "--listen", "127.0.0.1:0",
                         "--metrics", f"127.0.0.1:{port}", "--workers", workers)
    assert result.returncode == 3
    [line] = result.stderr.splitlines()  # nothing loaded, no worker started
    assert line.endswith(f"cannot serve metrics on 127.0.0.1:{port}: Address already in use")
