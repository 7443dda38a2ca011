"""The outbox mailer (development and tests): each message becomes an .eml file in a folder.

Contract: `OutboxMailer(folder, report)`: `push` writes `folder/<message-id>.eml` at once,
atomically (the same Message-ID overwrites its file, so a resend never makes a second file),
the bytes exactly as SMTP would carry them, and reports it; a write that fails (a full disk, no
permission) is a `TemporaryFailure`. `path_for(message_id)` names the file. The files name their
recipients, so only the service reads them: each 0600, the folder 0700 (made so, or tightened).
"""

from __future__ import annotations

import re
from pathlib import Path

from newsletter.mail.base import MessageRefused, Outgoing, Report, TemporaryFailure, settle
from newsletter.private_files import private_folder, write_private


class OutboxMailer:
    batches = False

    def __init__(self, folder: str | Path, report: Report):
        self.folder = Path(folder)
        self.report = report

    def path_for(self, message_id: str) -> Path:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", message_id.strip("<> "))[:150]
        return self.folder / f"{name}.eml"

    def push(self, outgoing: Outgoing) -> None:
        if not outgoing.message_id.strip("<> "):
            settle(self.report([outgoing], MessageRefused("the message has no Message-ID")))
            return
        target = self.path_for(outgoing.message_id)
        try:
            private_folder(self.folder, ours=True)
            write_private(target, outgoing.data)
        except OSError as error:
            settle(self.report([outgoing], TemporaryFailure(f"cannot write {target}: {error}")))
        else:
            settle(self.report([outgoing], None))

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


__all__ = ["OutboxMailer"]
