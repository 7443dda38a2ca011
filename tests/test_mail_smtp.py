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
from tests.smtp_server import SLOW_SECONDS, TOO_MANY, SmtpSink, self_signed_certificate

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
@pytest.mark.parametrize("pipelining", [True, False])
def test_smtp_failures_are_typed_by_scope_then_the_next_send_works(fault, kind, words, pipelining):
    with SmtpSink(faults=[fault], pipelining=pipelining) as server:
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


@pytest.mark.parametrize("pipelining", [True, False])
@pytest.mark.parametrize("workers", [1, 4])
def test_the_mailer_reports_every_message_once_with_its_scope(workers, pipelining):
    """550 at RCPT TO refuses the recipient; the others go, each reported exactly once, from
    the caller's thread (the connections are driven from it), with PIPELINING or without."""
    results = mail.Collect()
    threads = set()

    def report(outgoings, error):
        threads.add(threading.current_thread().name)
        results(outgoings, error)

    with SmtpSink(refuse=["r5@example.com"], pipelining=pipelining) as sink:
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
    assert threads == {"MainThread"}
    assert sink.connections == workers


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


def test_a_message_is_ended_only_once_the_one_before_it_on_its_connection_was_reported():
    """The crash promise: at any instant, at most one message per connection has been accepted
    by the server and not reported (recorded) yet, though replies are read in batches."""
    workers, recorded, worst = 3, [0], [0]
    with SmtpSink(parse=False) as sink:

        def report(outgoings, error):
            assert error is None
            time.sleep(0.003)  # a slow record: the server would run ahead if it could
            worst[0] = max(worst[0], sum(sink.accepted.values()) - recorded[0])
            recorded[0] += len(outgoings)

        smtp_settings = SmtpSettings(port=sink.port, security="none", timeout=2)
        mailer = SmtpMailer(smtp_settings, SENDER, report, workers=workers)
        for n in range(120):
            mailer.push(outgoing(n, to=f"r{n}@example.com"))
        mailer.flush()
        mailer.close()
    assert recorded[0] == 120 and sum(sink.accepted.values()) == 120
    assert 1 <= worst[0] <= workers


class Later:
    """A record that is done a few milliseconds after the report, in another thread (as the
    PostgreSQL recorder's): `report` returns it, and the mailer must wait for it."""

    def __init__(self, count: int, recorded: list, lock: threading.Lock):
        self._event = threading.Event()

        def finish():
            time.sleep(0.004)
            with lock:
                recorded[0] += count
            self._event.set()

        threading.Thread(target=finish, daemon=True).start()

    def done(self) -> bool:
        return self._event.is_set()

    def wait(self) -> None:
        self._event.wait()


def test_a_message_is_ended_only_once_the_record_before_it_is_done_when_it_comes_later():
    """The same promise when `report` returns its record on its way: at every instant, at most
    one message per connection is accepted and not recorded, while `push` goes on."""
    workers, recorded, worst, lock = 3, [0], [0], threading.Lock()
    stop = threading.Event()
    with SmtpSink(parse=False) as sink:

        def watch():  # accepted (read first) minus recorded, sampled all along
            while not stop.is_set():
                accepted = sum(sink.accepted.values())
                with lock:
                    worst[0] = max(worst[0], accepted - recorded[0])
                time.sleep(0.0005)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()

        def report(outgoings, error):
            assert error is None
            return Later(len(outgoings), recorded, lock)

        smtp_settings = SmtpSettings(port=sink.port, security="none", timeout=2)
        mailer = SmtpMailer(smtp_settings, SENDER, report, workers=workers)
        for n in range(120):
            mailer.push(outgoing(n, to=f"r{n}@example.com"))
        mailer.flush()
        assert recorded[0] == 120  # flush returns once every record is done
        mailer.close()
        stop.set()
        watcher.join()
    assert sum(sink.accepted.values()) == 120
    assert 1 <= worst[0] <= workers


@pytest.mark.parametrize("fault, words", [("drop", "closed the connection"), ("421", "421")])
def test_a_connection_lost_mid_pipeline_fails_one_message_and_the_next_goes_on_another(
    fault, words
):
    """The third transaction's connection closes (after its data, or with a 421 at MAIL FROM):
    that message is a temporary failure, reported once; the one pipelined behind it never left
    and goes through a new connection; everyone else is accepted exactly once."""
    results = mail.Collect()
    with SmtpSink(faults=[None, None, fault], parse=False) as sink:
        smtp_settings = SmtpSettings(port=sink.port, security="none", timeout=2)
        mailer = SmtpMailer(smtp_settings, SENDER, results, workers=2)
        sent = [outgoing(n, to=f"r{n}@example.com") for n in range(10)]
        for one in sent:
            mailer.push(one)
        mailer.flush()
        mailer.close()
        connections = sink.connections
    failed = {m: e for m, e in results.results.items() if e is not None}
    assert len(results.results) == 10 and len(failed) == 1
    (error,) = failed.values()
    assert isinstance(error, mail.TemporaryFailure) and words in str(error)
    assert sum(sink.accepted.values()) == 9 and set(sink.accepted.values()) == {1}
    assert connections == 3  # the lost one was replaced


def send_all(sink: SmtpSink, count: int, *, workers: int) -> mail.Collect:
    """`count` messages to different readers through one pool of `workers`, flushed, closed."""
    results = mail.Collect()
    smtp_settings = SmtpSettings(port=sink.port, security="none", timeout=2)
    mailer = SmtpMailer(smtp_settings, SENDER, results, workers=workers)
    for n in range(count):
        mailer.push(outgoing(n, to=f"r{n}@example.com"))
    mailer.flush()
    mailer.close()
    return results


@pytest.mark.parametrize(
    ("pipelining", "over_limit"),
    [(True, TOO_MANY), (False, TOO_MANY), (True, ""), (True, "421-Too many\r\n421 at once")],
)
def test_a_server_that_takes_fewer_connections_gets_what_it_takes_and_nothing_fails(
    pipelining, over_limit, caplog
):
    """A server that keeps 2 connections open at most, a mailer of 5: the 3 it turns away
    (a 421, a multi-line 421, or a close without a word) are set aside (each tried once,
    logged), and every message goes out exactly once through the 2 it took: no failure, no
    retry, nothing lost."""
    with SmtpSink(
        parse=False, max_connections=2, pipelining=pipelining, over_limit=over_limit
    ) as sink:
        results = send_all(sink, 40, workers=5)
    assert list(results.results.values()) == [None] * 40
    assert sum(sink.accepted.values()) == 40 and set(sink.accepted.values()) == {1}
    assert sink.refused == 3  # once each: set aside for the mailer's life
    said = [r.getMessage() for r in caplog.records if "would not open" in r.getMessage()]
    assert [line.split(" (")[0].rsplit(" ", 3)[1] for line in said] == ["3", "4", "5"], said
    assert all(line.endswith("going on with 2") for line in said), said


def test_a_permanent_refusal_to_open_is_never_set_aside_as_a_full_server(caplog):
    """A 554 greeting on the third connection is not "too many connections": it refuses that
    message for good (our account or our host), as before, and nothing is set aside."""
    with SmtpSink(parse=False, max_connections=2, over_limit="554 5.7.1 No SMTP here") as sink:
        results = send_all(sink, 3, workers=3)
    errors = [error for error in results.results.values() if error is not None]
    assert len(errors) == 1 and isinstance(errors[0], mail.MessageRefused), errors
    assert "554" in str(errors[0]) and sum(sink.accepted.values()) == 2
    assert not [r for r in caplog.records if "would not open" in r.getMessage()]


def test_a_server_that_takes_no_connection_fails_each_message_temporarily():
    """With no connection open, a refusal is the message's temporary failure, as always (the
    caller retries it): nothing is set aside for ever, nothing counts as sent."""
    with SmtpSink(parse=False, max_connections=0) as sink:
        results = send_all(sink, 6, workers=3)
    errors = list(results.results.values())
    assert len(errors) == 6 and all(isinstance(e, mail.TemporaryFailure) for e in errors)
    assert all("Too many connections" in str(e) for e in errors) and not sink.accepted
    assert sink.refused == 6  # each message tried a connection: none was set aside


@pytest.mark.parametrize("pipelining", [True, False])
def test_lines_that_start_with_a_dot_arrive_as_written(pipelining):
    """Dot-stuffing (RFC 5321 4.5.2): a line of one dot must not end the message early, and a
    line starting with dots keeps all of them."""
    lines = ["Hello", ".", "..two", ".one", "end."]
    msg = message(1)
    msg.set_content("\n".join(lines) + "\n")
    data = wire(msg)
    with SmtpSink(pipelining=pipelining) as server:
        transport = smtp(server.port)
        transport.send(SENDER, "reader@example.com", data)
        transport.send(SENDER, "reader@example.com", b".starts with a dot\r\n")
        transport.close()
        received = server.wait_for(2)
    assert received[0].get_content().splitlines() == lines
    assert server.envelopes == [(SENDER, ["reader@example.com"])] * 2


@pytest.mark.parametrize("implicit", [True, False])
def test_the_pool_pipelines_over_tls(certificate, implicit):
    """Over STARTTLS or implicit TLS, with login, the connections pipeline many messages: TLS
    records read ahead are taken before waiting on the socket again."""
    server_ctx, client_ctx = contexts(certificate)
    results = mail.Collect()
    login = {} if implicit else {"user": "mark", "password": "s3cret"}  # see the test below
    with SmtpSink(
        credentials=("mark", "s3cret") if login else None,
        tls_context=server_ctx,
        implicit_tls=implicit,
        parse=False,
    ) as sink:
        smtp_settings = SmtpSettings(
            host="127.0.0.1", port=sink.port, security="ssl" if implicit else "starttls",
            timeout=5, **login,
        )  # fmt: skip
        mailer = SmtpMailer(smtp_settings, SENDER, results, workers=2)
        mailer.connection = lambda: SmtpConnection.from_settings(smtp_settings, client_ctx)
        mailer._pool.connections = [mailer.connection() for _ in range(2)]
        for n in range(40):
            mailer.push(outgoing(n, to=f"r{n}@example.com"))
        mailer.flush()
        mailer.close()
    assert len(results.results) == 40 and set(results.results.values()) == {None}
    assert sum(sink.accepted.values()) == 40 and sink.connections == 2


def test_a_server_that_offers_no_login_refuses_the_message_and_bounces_nobody(certificate):
    """With a user set, a server that offers no AUTH (here aiosmtpd on implicit TLS, which it
    does not count as TLS) is our configuration's problem: the message is refused (the run
    stops), never the recipient (which would bounce every reader)."""
    server_ctx, client_ctx = contexts(certificate)
    with SmtpSink(
        credentials=("mark", "s3cret"), tls_context=server_ctx, implicit_tls=True
    ) as sink:
        transport = smtp(sink.port, security="ssl", user="mark", password="s3cret",
                         ssl_context=client_ctx)  # fmt: skip
        with pytest.raises(mail.MessageRefused, match="login"):
            transport.send_message(message())
    assert sink.accepted == {}


class HostileServer:
    """A raw SMTP server on 127.0.0.1 that greets, answers EHLO with PIPELINING, then answers
    the first MAIL FROM with `payload` (bytes, or a callable writing to the socket)."""

    def __init__(self, payload):
        self.payload = payload
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        connection, _ = self.listener.accept()
        with connection:
            connection.sendall(b"220 hostile ESMTP\r\n")
            buffer = b""
            while b"MAIL FROM" not in buffer:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                buffer += chunk
                if b"EHLO" in buffer and b"PIPELINING" not in buffer:
                    connection.sendall(b"250-hostile\r\n250 PIPELINING\r\n")
                    buffer += b"PIPELINING"
            try:
                if callable(self.payload):
                    self.payload(connection)
                else:
                    connection.sendall(self.payload)
                time.sleep(0.5)
            except OSError:
                pass

    def close(self):
        self.listener.close()


def endless(connection):
    for _ in range(5000):  # 250- lines that never end: 5 MB
        connection.sendall(b"250-" + b"x" * 1000 + b"\r\n")


@pytest.mark.parametrize(
    "payload",
    [
        b"250 OK\r\n250 OK\r\n354 go\r\n250 OK\r\n250 OK\r\n",  # replies nobody asked for
        b"hello there\r\n",  # not a reply
        b"2" * 200_000,  # one endless line
        endless,  # a reply that never ends
        b"250 OK\r\n550 no\r\n354 go ahead anyway\r\n",  # 354 after a refused recipient
    ],
    ids=["unasked", "garbage", "long-line", "endless", "354-after-refusal"],
)
def test_a_hostile_server_cannot_make_a_message_count_as_accepted(payload):
    """Replies we did not ask for, text that is no reply, a reply without end (memory stays
    bounded), a go-ahead for a refused transaction: the message fails (temporarily, or for the
    refusal), is reported once, and nothing is sent as its data."""
    server = HostileServer(payload)
    results = mail.Collect()
    try:
        mailer = SmtpMailer(
            SmtpSettings(host="127.0.0.1", port=server.port, security="none", timeout=2),
            SENDER, results, workers=2,
        )  # fmt: skip
        started = time.monotonic()
        mailer.push(outgoing(1))
        mailer.flush()
        mailer.close()
        assert time.monotonic() - started < 5
    finally:
        server.close()
    (error,) = results.results.values()
    assert isinstance(error, (mail.TemporaryFailure, mail.RecipientRefused)), error
