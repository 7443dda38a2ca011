"""The IMAP client of the bounce mailbox: connect, list, fetch unread, create, move; no parsing.

Contract:
- `Mailbox.connect(host, port, user, password, ssl_context=None)` logs in over implicit TLS
  (`ssl.create_default_context()` unless a context is given: tests pass one that trusts their own
  certificate; there is no plain-text IMAP), with a timeout of `IMAP_TIMEOUT_S` per operation.
  It is a context manager: leaving it logs out, quietly.
- `select(folder)` opens a folder; `uids()` lists the messages not flagged \\Deleted; `fetch(uid)`
  gives a message's bytes with BODY.PEEK[] (it stays unread), or None when it is gone (another
  client moved it); `create(folder)` makes a folder unless it exists; `move(uid, folder)` moves
  a message: UID MOVE where the server offers it (RFC 6851), else UID COPY, \\Deleted and UID
  EXPUNGE (with UIDPLUS, which touches only that message) or EXPUNGE; False when the server
  refuses (the message stays, read again next time).
- Folder names are IMAP names in ASCII (modified UTF-7 for other letters), sent quoted.
- Every failure (unreachable, certificate, login refused, a folder that cannot be opened or
  made, the connection lost) raises `MailboxError`, whose str() says which, for a person.
"""

from __future__ import annotations

import imaplib
import ssl

IMAP_TIMEOUT_S = 60.0


class MailboxError(Exception):
    """The bounce mailbox cannot be read (not configured, unreachable, login refused, lost);
    str() says which, for the person running the task."""


class Mailbox:
    def __init__(self, imap: imaplib.IMAP4):
        self.imap = imap
        self.capabilities: set[str] = set()
        self.folder = ""  # the selected one

    @classmethod
    def connect(cls, host: str, port: int, user: str, password: str,
                ssl_context: ssl.SSLContext | None = None) -> Mailbox:  # fmt: skip
        where = f"{host}:{port}"
        try:
            imap = imaplib.IMAP4_SSL(
                host,
                port,
                timeout=IMAP_TIMEOUT_S,
                ssl_context=ssl_context or ssl.create_default_context(),
            )
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(
                f"cannot connect to the bounce mailbox at {where}: {error}"
            ) from None
        try:
            imap.login(quote(user), password)
        except (OSError, imaplib.IMAP4.error) as error:
            try:
                imap.shutdown()
            except OSError:
                pass
            raise MailboxError(f"{where} refused the login of {user}: {error}") from None
        mailbox = cls(imap)
        status, data = mailbox._call("capability")
        mailbox.capabilities = set(said(data).upper().split()) if status == "OK" else set()
        return mailbox

    def __enter__(self) -> Mailbox:
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.imap.logout()
        except (OSError, imaplib.IMAP4.error):
            pass

    def select(self, folder: str) -> None:
        status, data = self._call("select", folder_name(folder))
        if status != "OK":
            raise MailboxError(f"cannot open the folder {folder}: {said(data)}")
        self.folder = folder

    def uids(self) -> list[bytes]:
        status, data = self._call("uid", "SEARCH", "UNDELETED")
        if status != "OK":
            raise MailboxError(f"cannot search {self.folder}: {said(data)}")
        return (data[0] or b"").split()

    def fetch(self, uid: bytes) -> bytes | None:
        status, data = self._call("uid", "FETCH", uid, "(BODY.PEEK[])")
        if status != "OK":
            return None
        for item in data or ():
            if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
                return item[1]
        return None

    def create(self, folder: str) -> None:
        name = folder_name(folder)
        status, data = self._call("list", '""', name)
        if status == "OK" and any(item for item in data or () if item):
            return
        status, data = self._call("create", name)
        if status != "OK" and "ALREADYEXISTS" not in said(data).upper():
            raise MailboxError(f"cannot create the folder {folder}: {said(data)}")

    def move(self, uid: bytes, folder: str) -> bool:
        """Move one message (see the contract); False if refused."""
        name = folder_name(folder)
        if "MOVE" in self.capabilities:
            status, _data = self._call("uid", "MOVE", uid, name)
            return status == "OK"
        status, _data = self._call("uid", "COPY", uid, name)
        if status != "OK":
            return False
        status, _data = self._call("uid", "STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
        if status != "OK":
            return False  # copied but not deleted: read again next time, a duplicate
        if "UIDPLUS" in self.capabilities:
            self._call("uid", "EXPUNGE", uid)
        else:
            self._call("expunge")
        return True

    def _call(self, command: str, *args):
        try:
            return getattr(self.imap, command)(*args)
        except (OSError, imaplib.IMAP4.error) as error:
            raise MailboxError(f"the bounce mailbox failed while reading: {error}") from None


def folder_name(name: str) -> str:
    """A folder name as an IMAP quoted string (imaplib sends arguments as they are)."""
    if not name.isascii() or any(c in name for c in "\r\n"):
        raise MailboxError(
            f"folder {name!r}: give its IMAP name in ASCII (modified UTF-7 for other letters)"
        )
    return quote(name)


def quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def said(data) -> str:
    """An IMAP response's text, for a message."""
    parts = [item.decode("utf-8", "replace") if isinstance(item, bytes) else str(item)
             for item in data or () if item is not None]  # fmt: skip
    return " ".join(parts)


__all__ = ["IMAP_TIMEOUT_S", "Mailbox", "MailboxError", "folder_name"]
