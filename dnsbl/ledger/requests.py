"""Removal requests from the public lookup page, kept in the ledger until an
analyst approves or rejects them."""

from __future__ import annotations

from dnsbl.ledger.connection import Connection
from dnsbl.ledger.model import RemovalRequest

_COLUMNS = "id, key, contact, message, client, at, state, decided_at, decided_by"


class RemovalRequests:
    """The removal_requests table on one ledger connection."""

    def __init__(self, db: Connection) -> None:
        self.db = db

    def request(self, key: str, contact: str, message: str, client: str,
                now: int) -> tuple[int, bool]:
        """Queue a removal request for ``key``: (its id, True) or, when one is
        pending already, (that one's id, False) and nothing is added."""
        params = {"key": key, "contact": contact, "message": message, "client": client,
                  "now": now}
        pending = "SELECT id FROM removal_requests WHERE state = 'pending' AND key = :key"
        with self.db.writing():
            found = self.db.rows(pending, params)
            if found:
                return int(found[0][0]), False
            self.db.change(
                "INSERT INTO removal_requests (key, contact, message, client, at, state) "
                "VALUES (:key, :contact, :message, :client, :now, 'pending')", params)
            made = self.db.rows(pending, params)
        return int(made[0][0]), True

    def in_state(self, state: str | None = "pending") -> list[RemovalRequest]:
        """Removal requests in one state (all when None), oldest first."""
        where = "WHERE state = :state" if state else ""
        return [RemovalRequest(*row) for row in self.db.rows(
            f"SELECT {_COLUMNS} FROM removal_requests {where} ORDER BY id", {"state": state})]

    def decide(self, request_id: int, state: str, who: str, now: int) -> RemovalRequest | None:
        """Mark a pending request approved or rejected; None when it is not pending.
        (Approving it does not remove the listing: the caller does, with the
        request as the reason.)"""
        params = {"id": request_id, "state": state, "who": who, "now": now}
        with self.db.writing():
            if not self.db.change(
                    "UPDATE removal_requests SET state = :state, decided_at = :now, "
                    "decided_by = :who WHERE id = :id AND state = 'pending'", params):
                return None
            row = self.db.rows(f"SELECT {_COLUMNS} FROM removal_requests WHERE id = :id",
                               params)[0]
        return RemovalRequest(*row)

    def pending(self) -> int:
        """How many requests wait for an analyst."""
        return int(self.db.rows(
            "SELECT COUNT(*) FROM removal_requests WHERE state = 'pending'")[0][0])
