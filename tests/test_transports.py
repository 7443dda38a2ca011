"""Transports against real destinations: .eml files on disk, and a real SMTP server."""

import email
import email.policy
import socket
import ssl
import time

import pytest

from newsletter.mail.message import message_id, new_message
from newsletter.mail.smtp import (
    OutboxTransport,
    PermanentFailure,
    SmtpTransport,
    TemporaryFailure,
    get_transport,
)
from newsletter.settings import Settings
from tests.smtp_server import SLOW_SECONDS, SmtpServer, self_signed_certificate

SETTINGS = Settings()


def message(n=1, to="reader@example.com"):
    msg = new_message(SETTINGS, to, f"Test {n}", message_id(SETTINGS, "test", n))
    msg.set_content(f"Hello number {n}")
    return msg


def smtp(port, **kwargs):
    kwargs.setdefault("security", "none")
    kwargs.setdefault("timeout", 2)
    return SmtpTransport("127.0.0.1", port, **kwargs)


def test_outbox_writes_one_eml_per_message_id(tmp_path):
    outbox = OutboxTransport(tmp_path / "outbox")
    outbox.send(message(1))
    outbox.send(message(1))  # a resend of the same message: still one file
    outbox.send(message(2))
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert parsed["To"] == "reader@example.com"
    assert parsed.get_content().strip().startswith("Hello number")
    assert not list((tmp_path / "outbox").glob("*.tmp"))


def test_outbox_that_cannot_be_written_is_a_temporary_failure(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the outbox should be")
    with pytest.raises(TemporaryFailure, match="cannot write"):
        OutboxTransport(blocker).send(message())


def test_get_transport_follows_the_settings(tmp_path):
    assert isinstance(get_transport(Settings(outbox=tmp_path)), OutboxTransport)
    transport = get_transport(
        Settings(transport="smtp", smtp_host="mail.example", smtp_security="ssl", smtp_timeout=3)
    )
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.security, transport.timeout) == (
        "mail.example",
        465,
        "ssl",
        3,
    )


def test_smtp_delivers_over_one_connection():
    with SmtpServer() as server:
        transport = smtp(server.port)
        transport.send(message(1))
        transport.send(message(2))
        transport.flush()
        transport.close()
        received = server.wait_for(2)
    assert [m["Subject"] for m in received] == ["Test 1", "Test 2"]
    assert server.handler.envelopes[0] == ("newsletter@localhost", ["reader@example.com"])
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
    with SmtpServer(credentials=("mark", "s3cret"), tls_context=server_ctx) as server:
        ok = smtp(server.port, security="starttls", user="mark", password="s3cret",
                  ssl_context=client_ctx)  # fmt: skip
        ok.send(message())
        ok.close()
        assert len(server.wait_for(1)) == 1
        wrong = smtp(server.port, security="starttls", user="mark", password="nope",
                     ssl_context=client_ctx)  # fmt: skip
        with pytest.raises(TemporaryFailure, match="login refused: 535"):
            wrong.send(message())
        untrusted = smtp(server.port, security="starttls")  # the system CAs do not know it
        with pytest.raises(TemporaryFailure, match="CERTIFICATE_VERIFY_FAILED"):
            untrusted.send(message())
    assert len(server.messages) == 1


def test_smtp_implicit_tls(certificate):
    server_ctx, client_ctx = contexts(certificate)
    with SmtpServer(tls_context=server_ctx, implicit_tls=True) as server:
        transport = smtp(server.port, security="ssl", ssl_context=client_ctx)
        transport.send(message())
        transport.close()
        assert len(server.wait_for(1)) == 1


@pytest.mark.parametrize(
    "fault, kind, words",
    [
        ("421", TemporaryFailure, "421"),
        ("451", TemporaryFailure, "451"),
        ("drop", TemporaryFailure, "closed the connection"),
        ("550", PermanentFailure, "550"),
    ],
)
def test_smtp_failures_are_temporary_or_permanent_then_the_next_send_works(fault, kind, words):
    with SmtpServer(faults=[fault]) as server:
        transport = smtp(server.port)
        with pytest.raises(kind, match=words):
            transport.send(message(1))
        transport.send(message(2))  # reconnects by itself
        transport.close()
        assert [m["Subject"] for m in server.wait_for(1)] == ["Test 2"]


def test_slow_or_absent_server_fails_fast_and_temporarily():
    with SmtpServer(faults=["slow"]) as server:
        started = time.monotonic()
        with pytest.raises(TemporaryFailure, match="in time"):
            smtp(server.port, timeout=0.5).send(message())
        assert time.monotonic() - started < SLOW_SECONDS - 1
    with socket.socket() as sock:  # a port where nobody listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(TemporaryFailure, match="cannot talk to the SMTP server"):
        smtp(port).send(message())
