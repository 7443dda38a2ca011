"""The proof of our own mail: Message-IDs and VERP return paths that only the secret key makes,
checked by recomputing them, never by their shape."""

from __future__ import annotations

import re

import pytest

from newsletter.mail import proof
from tests.conftest import newsletter_settings

SETTINGS = newsletter_settings(verp_domain="bounces.walkagain.example")
READER = "Ab-3_xYz0123456789abcde"  # a public id: secrets.token_urlsafe(16) is 22 characters


def test_a_message_id_proves_whom_it_was_sent_to_and_is_deterministic():
    first = proof.message_id(SETTINGS, "announce", "tag:walkagain.example,2026:1", READER)
    assert first == proof.message_id(SETTINGS, "announce", "tag:walkagain.example,2026:1", READER)
    assert first != proof.message_id(SETTINGS, "announce", "tag:walkagain.example,2026:2", READER)
    assert re.fullmatch(rf"<[0-9a-f]{{32}}\.{READER}\.announce@walkagain\.example>", first)
    assert proof.proven_by_message_id(SETTINGS, first) == READER
    assert proof.proven_by_message_id(SETTINGS, first.strip("<>")) == READER  # as Mailgun has it
    assert proof.proven_by_message_id(SETTINGS, first.upper().replace(READER.upper(), READER))
    confirmation = proof.message_id(SETTINGS, "confirmation", 7, READER)
    assert proof.proven_by_message_id(SETTINGS, confirmation) == READER


@pytest.mark.parametrize(
    "forge",
    [
        lambda mid: mid.replace(READER, "Someone-else-0123456789"),  # another reader's id
        lambda mid: mid[:9] + ("0" if mid[9] != "0" else "1") + mid[10:],  # one digit changed
        lambda mid: "<" + "0" * 32 + mid[33:],  # an invented seal of the right shape
        lambda mid: mid.replace(".announce@", "@"),  # cut short
        lambda mid: "<0123456789abcdef0123456789abcdef.announce@walkagain.example>",  # old shape
        lambda mid: proof.message_id(  # made with another secret key
            newsletter_settings(secret_key="another-secret-" + "k" * 30), "announce", "g", READER
        ),
        lambda mid: proof.message_id(SETTINGS, "announce", "g"),  # to nobody: proves nothing
        lambda mid: mid[:-1] + "x" * 400 + ">",
        lambda mid: None,
        lambda mid: mid.replace(READER, READER + "\n"),
    ],
)
def test_a_forged_message_id_proves_nothing(forge):
    genuine = proof.message_id(SETTINGS, "announce", "g", READER)
    assert proof.proven_by_message_id(SETTINGS, forge(genuine)) is None


def test_a_verp_address_proves_whom_it_was_sent_to_within_rfc_5321():
    address = proof.verp_address(SETTINGS, "announce", "g" * 500, READER)
    local, _, domain = address.partition("@")
    assert domain == "bounces.walkagain.example" and len(local.encode()) <= 64
    assert proof.proven_by_verp(SETTINGS, address) == READER
    assert proof.proven_by_verp(SETTINGS, f"<{address.upper().replace(READER.upper(), READER)}>")
    assert proof.return_path(SETTINGS, "announce", "g", READER).startswith("bounces+")
    plain = newsletter_settings()
    assert proof.return_path(plain, "announce", "g", READER) == ""
    assert proof.proven_by_verp(plain, address) is None  # no VERP domain: no VERP proof
    with pytest.raises(ValueError, match="NEWSLETTER_VERP_DOMAIN"):
        proof.verp_address(plain, "announce", "g", READER)


@pytest.mark.parametrize(
    "address",
    [
        f"bounces+{READER}@bounces.walkagain.example",  # the old form: the public id alone
        f"bounces+{READER}.{'0' * 32}@bounces.walkagain.example",
        "bounces+Someone-else-0123456789.SEAL@bounces.walkagain.example",
        "bounces+@bounces.walkagain.example",
        f"news+{READER}.SEAL@bounces.walkagain.example",
        f"bounces+{READER}.SEAL@elsewhere.example",
    ],
)
def test_a_forged_verp_address_proves_nothing(address):
    genuine = proof.verp_address(SETTINGS, "announce", "g", READER)
    seal = genuine.partition("@")[0].rpartition(".")[2]
    assert proof.proven_by_verp(SETTINGS, address.replace("SEAL", seal)) is None
