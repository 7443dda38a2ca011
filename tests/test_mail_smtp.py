"""The SMTP mailer against a real SMTP server (aiosmtpd on 127.0.0.1): one send path, reused
connections, TLS, and every failure typed by its scope."""

import socket
import ssl
import threading
import time

import pytest

from newsletter import mail
from newsletter.mail.message import message_id, new_message, wire
from newsletter.mail.smtp import SmtpConnection, SmtpMailer
from newsletter.settings import DEV_FROM, SmtpSettings
from tests.conftest import newsletter_settings
from tests.smtp_server import SLOW_SECONDS, SmtpSink, self_signed_certificate

SETTINGS = newsletter_settings(sender=DEV_FROM)  # its address: the envelope sender asserted below
SENDER = SETTINGS.from_address.addr_spec


def message(n=1, to="reader@example.com"):
    msg = new_message(SETTINGS, to, f"Test {n}", message_id(SETTINGS, "test", n))
    msg.set_content(f"Hello number {n}")
    return msg


def outgoing(n=1, to="reader@example.com"):
    msg = message(n, to)
    return mail.Outgoing(to=to, message_id=str(msg["Message-ID"]), data=wire(msg))


class Conn(SmtpConnection):
    """A connection that sends `message(n)` objects, for short tests."""

    def send_message(self, msg):
        self.send(SENDER, str(msg["To"]), wire(msg))


def smtp(port, **kwargs):
    kwargs.setdefault("security", "none")
    kwargs.setdefault("timeout", 2)
    return Conn("127.0.0.1", port, **kwargs)


def test_connect_makes_the_mailer_the_settings_name(tmp_path):
    assert isinstance(
        mail.connect(newsletter_settings(tmp_path), mail.Collect()), mail.OutboxMailer
    )
    settings = newsletter_settings(
        transport="smtp", smtp_host="mail.example", smtp_security="ssl", smtp_timeout=3
    )
    mailer = mail.connect(settings, mail.Collect(), workers=3)
    assert isinstance(mailer, SmtpMailer) and mailer.workers == 3
    assert mailer.sender == "news@walkagain.example"  # NEWSLETTER_FROM's address
    connection = mailer.connection()
    assert (connection.host, connection.port, connection.security, connection.timeout) == (
        "mail.example",
        465,
        "ssl",
        3,
    )


def test_smtp_delivers_over_one_connection():
    with SmtpSink() as server:
        transport = smtp(server.port)
        transport.send_message(message(1))
        transport.send_message(message(2))
        transport.close()
        received = server.wait_for(2)
    assert [m["Subject"] for m in received] == ["Test 1", "Test 2"]
    assert server.envelopes[0] == ("newsletter@localhost", ["reader@example.com"])
    assert received[0]["Message-ID"] == message(1)["Message-ID"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    pair = self_signed_certificate(tmp_path_factory.mktemp("tls"))
    if pair is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    return pair


def contexts(certificate):
    cert, key = certificate
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


def test_smtp_starttls_with_login(certificate):
    server_ctx, client_ctx = contexts(certificate)
    with SmtpSink(credentials=("mark", "s3cret"), tls_context=server_ctx) as server:
        ok = smtp(server.port, security="starttls", user="mark", password="s3cret",
                  ssl_context=client_ctx)  # fmt: skip
        ok.send_message(message())
        ok.close()
        assert len(server.wait_for(1)) == 1
        wrong = smtp(server.port, security="starttls", user="mark", password="nope",
                     ssl_context=client_ctx)  # fmt: skip
        with pytest.raises(mail.MessageRefused, match="login refused: 535"):  # our account
            wrong.send_message(message())
        untrusted = smtp(server.port, security="starttls")  # the system CAs do not know it
        with pytest.raises(mail.TemporaryFailure, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.send_message(message())
    assert len(server.messages) == 1


def test_smtp_implicit_tls(certificate):
    server_ctx, client_ctx = contexts(certificate)
    with SmtpSink(tls_context=server_ctx, implicit_tls=True) as server:
        transport = smtp(server.port, security="ssl", ssl_context=client_ctx)
        transport.send_message(message())
        transport.close()
        assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize(
    "fault, kind, words",
    [
        ("421", mail.TemporaryFailure, "421"),
        ("451", mail.TemporaryFailure, "451"),
        ("drop", mail.TemporaryFailure, "closed the connection"),
        ("550", mail.RecipientRefused, "550"),
        ("554", mail.MessageRefused, "554 5.7.1 Message refused by policy"),
    ],
)
def test_smtp_failures_are_typed_by_scope_then_the_next_send_works(fault, kind, words):
    with SmtpSink(faults=[fault]) as server:
        transport = smtp(server.port)
        with pytest.raises(kind, match=words):
            transport.send_message(message(1))
        transport.send_message(message(2))  # reconnects by itself
        transport.close()
        assert [m["Subject"] for m in server.wait_for(1)] == ["Test 2"]


def test_slow_or_absent_server_fails_fast_and_temporarily():
    with SmtpSink(faults=["slow"]) as server:
        started = time.monotonic()
        with pytest.raises(mail.TemporaryFailure, match="in time"):
            smtp(server.port, timeout=0.5).send_message(message())
        assert time.monotonic() - started < SLOW_SECONDS - 1
    with socket.socket() as sock:  # a port where nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(mail.TemporaryFailure, match="cannot talk to the SMTP server"):
        smtp(port).send_message(message())


@pytest.mark.parametrize("workers", [1, 4])
def test_the_mailer_reports_every_message_once_with_its_scope(workers):
    """550 at RCPT TO refuses the recipient; the others go, each reported exactly once, from
    the caller's thread (one worker) or the pool's (several)."""
    results = mail.Collect()
    threads = set()

    def report(outgoings, error):
        threads.add(threading.current_thread().name)
        results(outgoings, error)

    with SmtpSink(refuse=["r5@example.com"]) as sink:
        smtp_settings = SmtpSettings(port=sink.port, security="none", timeout=2)
        mailer = SmtpMailer(smtp_settings, SENDER, report, workers=workers)
        sent = [outgoing(n, to=f"r{n}@example.com") for n in range(12)]
        for one in sent:
            mailer.push(one)
        mailer.flush()
        mailer.close()
    errors = {one.to: results.results[one.message_id] for one in sent}
    assert len(results.results) == 12
    assert isinstance(errors.pop("r5@example.com"), mail.RecipientRefused)
    assert set(errors.values()) == {None}
    assert sorted(sink.accepted) == sorted(errors) and set(sink.accepted.values()) == {1}
    assert (threads == {"MainThread"}) if workers == 1 else all("smtp-worker" in t for t in threads)


def test_the_pool_reuses_connections_and_keeps_the_rate():
    with SmtpSink(parse=False) as sink:
        results = mail.Collect()
        smtp_settings = SmtpSettings(port=sink.port, security="none", timeout=2, rate=40.0)
        mailer = SmtpMailer(smtp_settings, SENDER, results, workers=3)
        started = time.monotonic()
        for n in range(30):
            mailer.push(outgoing(n, to=f"r{n}@example.com"))
        mailer.flush()
        elapsed = time.monotonic() - started
        mailer.close()
    assert list(results.results.values()) == [None] * 30 and len(sink.accepted) == 30
    assert sink.connections == 3  # one per worker, kept open from message to message
    assert elapsed >= 29 / 40 * 0.95  # 40 messages per second at most
