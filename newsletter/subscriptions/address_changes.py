"""A change of address asked on the preferences page: the new address takes over only once the
link in its own confirmation email is answered.

Contract, over the `Database` (table `address_changes`, migration 0010: one pending change per
reader):
- `AddressChanges(database)`; `ADDRESS_CHANGE` is the kind of its email in the one outgoing-mail
  ledger (sent by the background sender, `sender.AddressChanges`), owed to the reader but
  addressed to the NEW address.
- `request(subscriber_id, email, key)`: `Requested.SAME` when it is already the reader's address
  (nothing stored), else `Requested.OWED`: the pending change is stored (replacing an earlier one,
  with a new nonce, so the earlier email's link stops working) and its email owed, in one
  transaction. The same work whether or not the new address is on the list: the page's answer
  never tells (the email to the new address does, to its owner only).
- `pending(subscriber_id)`: the `Pending` change, or None; `live(pending, max_age)`: whether its
  link can still work.
- `check(public_id, nonce)`: what the link would do now, changing nothing: `(Change, Subscriber,
  Pending)`. `confirm(public_id, nonce)`: the same, and for `Change.CHANGED` the new address takes
  over in one transaction: `email`, `email_key` and a new `public_id` (every link in the emails
  to the old address stops working, and no report about mail to the old address proves anything
  about the new one); the pending change is removed. An address on the list by then is
  `Change.TAKEN`: nothing changes (never a merge) and the pending change is dropped.
- `taken(key)`: whether an address key is on the list (any status: one key is one row).
- `drop(subscriber_id, mail_id=None)`: forget the pending change (of that email only, if given):
  the new address was refused for good. `prune(max_age)`: forget the changes whose link has
  expired (the background sender's pass: a read, and a write only when one is found), so a
  typed address is not kept past its link. `subscribers.forget` erases the changes to an
  address with the rest.
"""

from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import timedelta

from newsletter.database import Database, parse_stamp, stamp
from newsletter.outgoing.ledger import MailLedger
from newsletter.subscriptions.subscribers import Status, Subscriber, new_public_id

ADDRESS_CHANGE = "address_change"


class Requested(enum.StrEnum):
    OWED = "owed"  # a confirmation email to the new address is on its way
    SAME = "same"  # the reader's own address already: nothing to do


class Change(enum.StrEnum):
    CHANGED = "changed"  # the link works: the new address takes over
    TAKEN = "taken"  # the new address is on the list (another reader's row): nothing changes
    STALE = "stale"  # no such request any more: a newer one, done, or the reader left
    UNKNOWN = "unknown"  # no such reader (forgotten)


@dataclass(frozen=True)
class Pending:
    subscriber_id: int
    email: str
    email_key: str
    nonce: str
    requested_at: str
    mail_id: int | None


class AddressChanges:
    def __init__(self, database: Database):
        self.database = database

    def request(self, subscriber_id: int, email: str, key: str) -> Requested:
        now = self.database.now()
        with self.database.transaction() as db:
            current = db.execute(
                "SELECT email_key FROM subscribers WHERE id = ?", (subscriber_id,)
            ).fetchone()
            if current is None or current[0] == key:
                return Requested.SAME
            mail_id = MailLedger.add(db, ADDRESS_CHANGE, [subscriber_id], now=now)
            db.execute(
                "INSERT INTO address_changes (subscriber_id, email, email_key, nonce,"
                " requested_at, mail_id) VALUES (?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (subscriber_id) DO UPDATE SET email = excluded.email,"
                " email_key = excluded.email_key, nonce = excluded.nonce,"
                " requested_at = excluded.requested_at, mail_id = excluded.mail_id",
                (subscriber_id, email, key, secrets.token_urlsafe(9), now, mail_id),
            )
            return Requested.OWED

    def pending(self, subscriber_id: int) -> Pending | None:
        row = self.database.db.execute(
            "SELECT subscriber_id, email, email_key, nonce, requested_at, mail_id"
            " FROM address_changes WHERE subscriber_id = ?",
            (subscriber_id,),
        ).fetchone()
        return Pending(*row) if row else None

    def live(self, pending: Pending | None, max_age: float) -> bool:
        """Whether a link for this change can still work (asked less than `max_age` s ago)."""
        if pending is None:
            return False
        age = self.database.clock() - parse_stamp(pending.requested_at)
        return age < timedelta(seconds=max_age)

    def taken(self, key: str) -> bool:
        row = self.database.db.execute(
            "SELECT 1 FROM subscribers WHERE email_key = ?", (key,)
        ).fetchone()
        return row is not None

    def check(self, public_id: str, nonce: str) -> tuple[Change, Subscriber | None, Pending | None]:
        row = self.database.db.execute(
            "SELECT * FROM subscribers WHERE public_id = ?", (public_id,)
        ).fetchone()
        if row is None:
            return Change.UNKNOWN, None, None
        subscriber = Subscriber.from_row(row)
        pending = self.pending(subscriber.id)
        if (
            pending is None
            or not secrets.compare_digest(pending.nonce, nonce)
            or subscriber.status != Status.CONFIRMED
        ):
            return Change.STALE, subscriber, pending
        if self.taken(pending.email_key):
            return Change.TAKEN, subscriber, pending
        return Change.CHANGED, subscriber, pending

    def confirm(self, public_id: str, nonce: str) -> tuple[Change, Subscriber | None]:
        with self.database.transaction() as db:
            outcome, subscriber, pending = self.check(public_id, nonce)  # in this transaction
            if outcome == Change.TAKEN:
                db.execute("DELETE FROM address_changes WHERE subscriber_id = ?", (subscriber.id,))
            if outcome != Change.CHANGED:
                return outcome, subscriber
            db.execute(
                "UPDATE subscribers SET email = ?, email_key = ?, public_id = ? WHERE id = ?",
                (pending.email, pending.email_key, new_public_id(), subscriber.id),
            )
            db.execute("DELETE FROM address_changes WHERE subscriber_id = ?", (subscriber.id,))
            row = db.execute("SELECT * FROM subscribers WHERE id = ?", (subscriber.id,)).fetchone()
            return Change.CHANGED, Subscriber.from_row(row)

    def prune(self, max_age: float) -> int:
        """Forget the changes asked more than `max_age` seconds ago; return how many."""
        before = stamp(self.database.clock() - timedelta(seconds=max_age))
        found = "SELECT 1 FROM address_changes WHERE requested_at < ? LIMIT 1"
        if self.database.db.execute(found, (before,)).fetchone() is None:
            return 0
        with self.database.transaction() as db:
            gone = db.execute("DELETE FROM address_changes WHERE requested_at < ?", (before,))
            return gone.rowcount

    def drop(self, subscriber_id: int, mail_id: int | None = None) -> None:
        with self.database.transaction() as db:
            if mail_id is None:
                db.execute("DELETE FROM address_changes WHERE subscriber_id = ?", (subscriber_id,))
            else:
                db.execute(
                    "DELETE FROM address_changes WHERE subscriber_id = ? AND mail_id = ?",
                    (subscriber_id, mail_id),
                )


__all__ = ["ADDRESS_CHANGE", "AddressChanges", "Change", "Pending", "Requested"]
