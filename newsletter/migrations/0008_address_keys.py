"""0008: one address is one mailbox. Re-key `subscribers` and pending `signup_requests` from the
old key (`casefold()` of the address, which merged `ſam@` with `sam@` and `straße.de` with
`strasse.de`) to today's (`addresses.mailbox_key`: ASCII letters lowercased, every other character
kept, the domain in IDNA ASCII form).

No row is lost. Two rows that would now share a key (possible only for rows stored by other
means than `addresses.normalize`) are both kept: the older takes the key, the other keeps a key
marked `#row<id>` that no address matches, and a warning names both ids. A row whose address
could have stood for two mailboxes under the old key (its local part holds letters that casefold
changes, such as `ſ`, `ß` or `ﬃ`) keeps its address and gets its exact key; a warning says that
a reader with the other spelling may have been merged into it. The key function is copied here,
as it is today, so this migration does what it did whatever the code does later.
"""

from __future__ import annotations

import logging

import idna

log = logging.getLogger("newsletter.migrations")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def key_of(email: str) -> str | None:
    local, at, domain = email.rpartition("@")
    if not at or not local or not domain:
        return None
    try:
        ascii_domain = domain.encode("ascii").decode() if domain.isascii() else (
            idna.encode(domain, uts46=True, transitional=False).decode("ascii")
        )  # fmt: skip
    except (idna.IDNAError, UnicodeError):
        return None
    return local.translate(_ASCII_LOWER) + "@" + ascii_domain.lower()


def migrate(db) -> None:
    rows = db.execute("SELECT id, email, email_key FROM subscribers ORDER BY id").fetchall()
    taken: dict[str, int] = {}
    changes: list[tuple[str, int]] = []
    for row_id, email, old in rows:
        new = key_of(email)
        if new is None:
            log.warning("subscriber row %s: its address cannot be keyed anew; key kept", row_id)
            new = old
        if new in taken:
            log.warning(
                "subscribers rows %s and %s are one mailbox under the new key; both kept, "
                "row %s under a key no address matches: merge or remove one by hand",
                taken[new], row_id, row_id,
            )  # fmt: skip
            new = f"{new}#row{row_id}"
        taken[new] = row_id
        local = email.rpartition("@")[0]
        if local.casefold() != local.translate(_ASCII_LOWER) and not local.isascii():
            log.warning(
                "subscriber row %s: its address was keyed with other spellings of the same "
                "letters (%s); it now stands for its own spelling only", row_id,
                ", ".join(sorted({c for c in local if c.casefold() != c.lower()})) or "case",
            )  # fmt: skip
        if new != old:
            changes.append((new, row_id))
    # Two passes, so that no intermediate state breaks the UNIQUE constraint.
    db.executemany(
        "UPDATE subscribers SET email_key = '#migrating' || id WHERE id = ?",
        [(row_id,) for _new, row_id in changes],
    )
    db.executemany("UPDATE subscribers SET email_key = ? WHERE id = ?", changes)
    for request_id, email in db.execute("SELECT id, email FROM signup_requests").fetchall():
        new = key_of(email)
        if new is not None:
            db.execute("UPDATE signup_requests SET email_key = ? WHERE id = ?", (new, request_id))
