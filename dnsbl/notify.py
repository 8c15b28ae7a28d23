"""NOTIFY (RFC 1996): telling a zone's secondaries that its serial changed,
so they ask for it (an IXFR) at once rather than at their next refresh.

Each secondary is sent a NOTIFY over UDP, TSIG-signed when the zone has a
key, and sent it again after 1, 2, 4 ... seconds until it answers, at most
:data:`TRIES` times (RFC 1996 section 3.6 asks for retries, and leaves the
schedule to us). A newer serial of the zone ends the tries for an older one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import dns.tsig

log = logging.getLogger(__name__)

TRIES = 5
FIRST_WAIT = 1.0  # seconds for the first answer; doubled for each try after
RESULTS = ("ok", "refused", "unanswered")


class _Answer(asyncio.DatagramProtocol):
    def __init__(self, query_id: int) -> None:
        self.id = query_id
        self.reply: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        # Ours: the same id, a response (QR) to a NOTIFY (opcode 4).
        if (len(data) >= 12 and data[:2] == self.id.to_bytes(2, "big") and data[2] & 0x80
                and (data[2] >> 3) & 0x0F == dns.opcode.NOTIFY and not self.reply.done()):
            self.reply.set_result(data)

    def error_received(self, exc: Exception) -> None:
        pass  # ICMP unreachable: nobody there yet; the next try may find them


class Notifier:
    """Sends the NOTIFYs; ``counts`` by (zone, result)."""

    def __init__(self, first_wait: float = FIRST_WAIT, tries: int = TRIES) -> None:
        self.counts: dict[tuple[str, str], int] = {}
        self._first_wait = first_wait
        self._tries = tries
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}

    def notify(self, zone: str, soa: dns.rrset.RRset, targets: tuple[tuple[str, int], ...],
               key: dns.tsig.Key | None) -> None:
        """Tell ``targets`` that ``zone`` now has the SOA ``soa``."""
        for task in self._tasks.pop(zone, set()):
            task.cancel()  # superseded
        loop = asyncio.get_running_loop()
        tasks = self._tasks[zone] = set()
        for target in targets:
            task = loop.create_task(self._send(zone, soa, target, key))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    def _count(self, zone: str, result: str) -> None:
        self.counts[(zone, result)] = self.counts.get((zone, result), 0) + 1

    async def _send(self, zone: str, soa: dns.rrset.RRset, target: tuple[str, int],
                    key: dns.tsig.Key | None) -> None:
        message = dns.message.make_query(soa.name, dns.rdatatype.SOA)
        # AA, no RD (RFC 1996 section 3.7); the opcode lives in the flags too.
        message.flags = (message.flags & ~dns.flags.RD) | dns.flags.AA
        message.set_opcode(dns.opcode.NOTIFY)
        message.answer.append(soa)  # RFC 1996 section 3.7: the new SOA, as a hint
        if key is not None:
            message.use_tsig(key)
        loop = asyncio.get_running_loop()
        wait = self._first_wait
        for _try in range(self._tries):
            wire = message.to_wire()  # signed anew: a TSIG's time is checked
            try:
                transport, answer = await loop.create_datagram_endpoint(
                    lambda: _Answer(message.id), remote_addr=target)
            except OSError as exc:
                log.warning("zone %s: cannot send NOTIFY to %s:%d: %s", zone, *target,
                            exc.strerror or exc)
                break
            try:
                transport.sendto(wire)
                try:
                    async with asyncio.timeout(wait):
                        reply = await answer.reply
                except TimeoutError:
                    wait *= 2
                    continue
            finally:
                transport.close()
            rcode = reply[3] & 0x0F
            if rcode:
                log.warning("zone %s: %s:%d answered our NOTIFY with %s", zone, *target,
                            dns.rcode.Rcode(rcode).name)
            self._count(zone, "refused" if rcode else "ok")
            return
        log.warning("zone %s: %s:%d did not answer NOTIFY (tried %d times)", zone, *target,
                    self._tries)
        self._count(zone, "unanswered")

    async def close(self) -> None:
        tasks = [t for group in self._tasks.values() for t in group]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
