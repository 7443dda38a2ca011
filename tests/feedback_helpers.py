"""Shared by the feedback tests (the webhooks, the bounce mailbox, the end-to-end test): a local
"SNS" (a test PKI, an HTTPS server on 127.0.0.1 serving SNS's signing certificate and answering
subscription confirmations, and SNS's message signing), and the TLS contexts of the local IMAP
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

from newsletter.subscriptions import webhooks
from tests.smtp_server import self_signed_certificate

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
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"https://127.0.0.1:{httpd.server_address[1]}"
    return Sns(base, signing_key, httpd, str(folder / "ca.pem"))


def trust_local_sns(sns: Sns, monkeypatch) -> Sns:
    """The webhook trusts this test's HTTPS server as SNS's host, through its test CA; every
    other host (and port) stays refused. Forgets what the server has seen so far."""
    port = urlsplit(sns.base).port
    monkeypatch.setattr(webhooks, "SNS_CERT_HOST", re.compile(rf"^127\.0\.0\.1:{port}$"))
    monkeypatch.setattr(webhooks, "SNS_TLS_VERIFY", sns.ca)
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
