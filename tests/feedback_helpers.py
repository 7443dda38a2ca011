"""Shared by the feedback tests (the webhooks, the bounce mailbox, the end-to-end test): the
database seen from outside (`snapshot` of every table before and after a request, `status_of`,
`events_of`, `reviews_of`, `public_id`, `query`); a local "SNS" (a test PKI, an HTTPS server on
127.0.0.1 serving SNS's signing certificate and answering subscription confirmations, SNS's
message signing, and `trust_local_sns(sns, app)`, which an app trusts through its config); the
bounce mailbox's samples (`SAMPLES`, `verp_sample`) and the TLS contexts of the local IMAP
server."""

from __future__ import annotations

import base64
import http.server
import ipaddress
import json
import re
import ssl
import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from hypothesis import strategies as st

from newsletter.mail import proof
from newsletter.subscriptions import webhooks
from tests import backends
from tests.smtp_server import self_signed_certificate

SAMPLES = Path(__file__).resolve().parent / "dsn_samples"  # real reports: docs/bounces.md
VERP_DOMAIN = "bounces.walkagain.example"
VERP_SAMPLE = "verp-forwarded.eml"  # proves itself by its return path alone

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses"
CERT_PATH = "/SimpleNotificationService-0123456789abcdef0123456789abcdef.pem"
EXPIRED_PATH = "/SimpleNotificationService-expired.pem"
SIGNED = {  # what SNS signs for each message type, in this order ("Subject" only when present)
    "Notification": ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"],
    "SubscriptionConfirmation": [
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ],
}  # fmt: skip


# A test PKI: a CA for the local HTTPS server, and SNS's signing key and certificate ------------
def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(subject, key, issuer, issuer_key, *, days=(-1, 2), ca=False, ip=None):
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + timedelta(days=days[0]))
        .not_valid_after(now + timedelta(days=days[1]))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )  # fmt: skip
    if ip:
        builder = (
            builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
                critical=False,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
                critical=False,
            )
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


class SNSHandler(http.server.BaseHTTPRequestHandler):
    """Serves the signing certificates and answers subscription confirmations; records every
    request it gets (`server.seen`)."""

    def do_GET(self):
        self.server.seen.append(self.path)
        parts = urlsplit(self.path)
        if parts.path == "/" and parse_qs(parts.query).get("Action") == ["ConfirmSubscription"]:
            body = b"<ConfirmSubscriptionResponse><ConfirmSubscriptionResult><SubscriptionArn>"
            body += (TOPIC + ":e3ddc7d6").encode() + b"</SubscriptionArn>"
            body += b"</ConfirmSubscriptionResult></ConfirmSubscriptionResponse>"
        else:
            body = self.server.files.get(parts.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Sns:
    def __init__(self, base, key, httpd, ca):
        self.base, self.key, self.httpd, self.ca = base, key, httpd, ca
        self.cert_url = base + CERT_PATH

    @property
    def seen(self) -> list[str]:
        return self.httpd.seen

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def message(self, content=None, *, kind="Notification", version="1", topic=TOPIC,
                cert_url=None, key=None, **fields) -> dict:  # fmt: skip
        """An SNS message as SNS posts it, signed (SignatureVersion 1: SHA1withRSA, 2:
        SHA256withRSA) over SNS's documented string to sign."""
        message_id = str(uuid.uuid4())
        doc = {
            "Type": kind,
            "MessageId": message_id,
            "TopicArn": topic,
            "Message": content if isinstance(content, str) else json.dumps(content),
            "Timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "SignatureVersion": version,
            "SigningCertURL": cert_url or self.cert_url,
        }
        if kind == "Notification":
            doc["UnsubscribeURL"] = (
                f"{self.base}/?Action=Unsubscribe&SubscriptionArn={TOPIC}:e3ddc7d6"
            )
        else:
            token = "2336412f37fb687f5d51e6e241d09c8058323f6" + uuid.uuid4().hex
            doc["Token"] = token
            doc["SubscribeURL"] = (
                f"{self.base}/?Action=ConfirmSubscription&TopicArn={TOPIC}&Token={token}"
            )
            doc["Message"] = (
                f"You have chosen to subscribe to the topic {TOPIC}.\n"
                "To confirm the subscription, visit the SubscribeURL included in this message."
            )
        doc.update(fields)
        return self.sign(doc, version=version, key=key)

    def sign(self, doc: dict, *, version="1", key=None) -> dict:
        text = "".join(
            f"{name}\n{doc[name]}\n" for name in SIGNED[doc["Type"]] if name in doc
        ).encode()
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = (key or self.key).sign(text, padding.PKCS1v15(), digest)
        return {**doc, "Signature": base64.b64encode(signature).decode()}


def serve_sns(folder: Path) -> Sns:
    """The local "SNS": an HTTPS server on 127.0.0.1 (a certificate from the test's CA), the
    signing key, and where its certificate is; its PKI written to `folder`. `stop()` it."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("Webhook tests CA", ca_key, "Webhook tests CA", ca_key, ca=True)
    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = _certificate("127.0.0.1", server_key, "Webhook tests CA", ca_key, ip="127.0.0.1")
    (folder / "ca.pem").write_bytes(_pem(ca))
    (folder / "server.pem").write_bytes(_pem(server_cert))
    (folder / "server.key").write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signing = _certificate("sns.amazonaws.com", signing_key, "sns.amazonaws.com", signing_key)
    expired = _certificate(
        "sns.amazonaws.com", signing_key, "sns.amazonaws.com", signing_key, days=(-10, -1)
    )

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), SNSHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    httpd.seen = []
    httpd.files = {CERT_PATH: _pem(signing), EXPIRED_PATH: _pem(expired)}
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    base = f"https://127.0.0.1:{httpd.server_address[1]}"
    return Sns(base, signing_key, httpd, str(folder / "ca.pem"))


def trust_local_sns(sns: Sns, app, *, any_port: bool = False) -> Sns:
    """The app trusts this test's HTTPS server as SNS's host (through its config, as any app
    may: `webhooks.SNS_CERT_HOST_CONFIG`), with its test CA; every other host (and port, unless
    `any_port`) stays refused. Forgets what the server has seen so far."""
    port = r"\d+" if any_port else str(urlsplit(sns.base).port)
    app.config[webhooks.SNS_CERT_HOST_CONFIG] = re.compile(rf"^127\.0\.0\.1:{port}$")
    app.config[webhooks.SNS_TLS_VERIFY_CONFIG] = sns.ca
    sns.seen.clear()
    return sns


# The local IMAP server's TLS -------------------------------------------------------------------
def imap_tls(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext, Path]:
    """A certificate for 127.0.0.1 made in `folder`: the server's context, a client context
    that trusts it, and the certificate's path (skips the test when openssl is missing)."""
    made = self_signed_certificate(folder)
    if made is None:
        pytest.skip("the openssl command is missing (bin/setup --test installs it)")
    cert, key = made
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    return server, ssl.create_default_context(cafile=str(cert)), cert


# What a provider's JSON may hold, for the webhooks' fuzz tests ----------------------------------
JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                max_size=3),
    max_leaves=12,
)  # fmt: skip


# The bounce mailbox's samples ------------------------------------------------------------------
def verp_sample(settings, public_id: str) -> bytes:
    """`verp-forwarded.eml` as it comes back to the VERP return path of our email to the reader
    `public_id` (the report names only the address they forward to)."""
    data = (SAMPLES / VERP_SAMPLE).read_bytes()
    verp = proof.verp_address(settings, "announce", "k", public_id)
    return data.replace(b"bounces+VERP-TOKEN@" + VERP_DOMAIN.encode(), verp.encode())


# Reports anyone can write: forgeries of a DSN, an abuse report (ARF), an Exim text bounce -----
def dsn(blocks: list[str], original: str = "", sender="MAILER-DAEMON@mx.stranger.example") -> str:
    recipients = "".join(
        f"Final-Recipient: rfc822; {address}\nAction: failed\nStatus: 5.1.1\n"
        "Diagnostic-Code: smtp; 550 5.1.1 user unknown\n\n"
        for address in blocks
    )
    return (
        f"From: {sender}\nTo: news@walkagain.example\nSubject: Undelivered Mail Returned\n"
        f"Message-ID: <{len(blocks)}-{abs(hash(original))}@mx.stranger.example>\n"
        "Date: Fri, 04 Dec 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nDelivery failed.\n\n"
        "--b\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.stranger.example\n\n"
        f"{recipients}{original}--b--\n"
    )


def arf(victim: str) -> str:
    return (
        "From: fbl@isp.example\nTo: news@walkagain.example\nSubject: Abuse report\n"
        "Message-ID: <arf-forged@isp.example>\nDate: Fri, 04 Dec 2026 10:00:00 +0000\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nThis is an abuse report.\n\n"
        "--b\nContent-Type: message/feedback-report\n\nFeedback-Type: abuse\nUser-Agent: FBL/1.0\n"
        f"Version: 1\nOriginal-Rcpt-To: {victim}\nArrival-Date: Fri, 04 Dec 2026 09:00:00 +0000\n\n"
        "--b--\n"
    )


def exim(*victims: str) -> str:
    return (
        "From: Mail Delivery System <Mailer-Daemon@mx.stranger.example>\n"
        "To: news@walkagain.example\nSubject: Mail delivery failed: returning message to sender\n"
        "Message-Id: <exim-forged@mx.stranger.example>\nDate: Fri, 04 Dec 2026 10:00:00 +0000\n"
        "X-Failed-Recipients: " + ", ".join(victims) + "\n\n"
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        + "".join(f"  {v}\n    SMTP error from remote mail server after RCPT TO:<{v}>:\n"
                  f"    550 5.1.1 User unknown\n" for v in victims)
    )  # fmt: skip


# The database seen from outside ----------------------------------------------------------------
def query(settings, sql: str, *args) -> list[tuple]:
    return backends.query(settings.database, sql, *args)


def snapshot(settings, *, tokens: bool = True) -> dict[str, list]:
    """Every row of every table but the rate limits' (refusals and downloads are counted
    there), to compare before and after a request that must change nothing; without the used
    Mailgun tokens when `tokens` is False (a signed request spends its token whatever it says)."""
    skip = ("rate_limits",) if tokens else ("rate_limits", "webhook_tokens")
    return backends.contents(settings.database, skip=skip)


def public_id(settings, email: str) -> str:
    return query(settings, "SELECT public_id FROM subscribers WHERE email = ?", email)[0][0]


def status_of(settings, email: str) -> str:
    return query(settings, "SELECT status FROM subscribers WHERE email = ?", email)[0][0]


def events_of(settings) -> list[tuple]:
    """(kind, provider, reason, message_id, occurred_at, event_key) of every event, in order."""
    return query(
        settings,
        "SELECT kind, provider, reason, message_id, occurred_at, event_key"
        " FROM feedback_events ORDER BY id",
    )


def reviews_of(settings) -> list[tuple]:
    """(provider, kind, why, the names it kept) of every report kept for review, in order."""
    found: dict[int, list] = {}
    for review_id, provider, kind, why, email in query(
        settings,
        "SELECT r.id, r.provider, r.kind, r.why, n.email FROM feedback_reviews r"
        " JOIN feedback_review_names n ON n.review_id = r.id ORDER BY r.id, n.email_key",
    ):
        found.setdefault(review_id, [provider, kind, why, []])[3].append(email)
    return [(p, k, w, ",".join(names)) for p, k, w, names in found.values()]
