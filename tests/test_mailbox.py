"""The IMAP client of the bounce mailbox (`mailbox.Mailbox`) against a real IMAP server over TLS
(tests/imap_server.py): it lists what is not deleted, fetches without marking read, creates a
folder once, moves with MOVE, or COPY + \\Deleted + (UID) EXPUNGE, reports a refused move, and
says why it cannot connect, log in or open a folder. It parses nothing: bytes in, bytes out."""

from __future__ import annotations

import pytest

from newsletter.subscriptions.mailbox import Mailbox, MailboxError, folder_name
from tests.feedback_helpers import imap_tls
from tests.imap_server import ImapServer


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    return imap_tls(tmp_path_factory.mktemp("imap-tls"))


def connect(server: ImapServer, tls, **changes) -> Mailbox:
    login = dict(user=server.user, password=server.password, ssl_context=tls[1]) | changes
    return Mailbox.connect("127.0.0.1", server.port, **login)


def test_messages_are_listed_and_fetched_unread_and_deleted_ones_skipped(tls):
    with ImapServer(tls[0]) as server:
        first, second = server.deliver(b"Subject: one\r\n\r\nbody\r\n"), server.deliver(b"x")
        server.folder("INBOX").messages[1].flags.add("\\Deleted")
        with connect(server, tls) as box:
            box.select("INBOX")
            uids = box.uids()
            assert uids == [str(first).encode()]
            assert box.fetch(uids[0]) == b"Subject: one\r\n\r\nbody\r\n"
            assert box.fetch(str(second + 10).encode()) is None  # gone meanwhile
        assert all("\\Seen" not in flags for flags in server.flags("INBOX"))
        assert any("BODY.PEEK[]" in command for command in server.commands)


@pytest.mark.parametrize("capabilities", [("MOVE", "UIDPLUS"), ("UIDPLUS",), ()])
def test_a_message_moves_with_or_without_the_move_command(tls, capabilities):
    with ImapServer(tls[0], capabilities=capabilities) as server:
        uid = str(server.deliver(b"Subject: bounce\r\n\r\n")).encode()
        server.deliver(b"Subject: stays\r\n\r\n")
        with connect(server, tls) as box:
            box.select("INBOX")
            box.create("Bounces/Done 2026")
            box.create("Bounces/Done 2026")  # there already: nothing to do
            assert box.move(uid, "Bounces/Done 2026") is True
        assert server.messages("Bounces/Done 2026") == [b"Subject: bounce\r\n\r\n"]
        assert server.messages("INBOX") == [b"Subject: stays\r\n\r\n"]
        sent = " ".join(server.commands)
        assert sent.count('CREATE "Bounces/Done 2026"') == 1
        if "MOVE" in capabilities:
            assert "UID MOVE" in sent and "UID COPY" not in sent
        else:
            assert "UID COPY" in sent and "+FLAGS.SILENT (\\Deleted)" in sent
            assert ("UID EXPUNGE" in sent) == ("UIDPLUS" in capabilities)


def test_a_refused_move_is_false_and_the_message_stays(tls):
    with ImapServer(tls[0]) as server:
        uid = str(server.deliver(b"Subject: bounce\r\n\r\n")).encode()
        server.refuse_moves = True
        with connect(server, tls) as box:
            box.select("INBOX")
            box.create("Processed")
            assert box.move(uid, "Processed") is False
        assert len(server.messages("INBOX")) == 1 and server.messages("Processed") == []


def test_the_mailbox_says_why_it_cannot_be_read(tls):
    with ImapServer(tls[0]) as server:
        with pytest.raises(MailboxError, match="refused the login of bounces@"):
            connect(server, tls, password="wrong")
        with pytest.raises(MailboxError, match="cannot connect.*(CERTIFICATE|certificate)"):
            connect(server, tls, ssl_context=None)  # the system's CAs do not trust the test's
        with connect(server, tls) as box, pytest.raises(MailboxError, match="open the folder Nowh"):
            box.select("Nowhere")
    with pytest.raises(MailboxError, match="cannot connect to the bounce mailbox at 127.0.0.1"):
        Mailbox.connect("127.0.0.1", server.port, "u", "p", tls[1])  # the server has stopped


@pytest.mark.parametrize("name", ["Boîte", "INBOX\r\nDELETE INBOX"])
def test_folder_names_are_ascii_imap_names_without_line_breaks(name):
    with pytest.raises(MailboxError, match="IMAP name in ASCII"):
        folder_name(name)
    assert folder_name('Archive/"Bounces"') == '"Archive/\\"Bounces\\""'
