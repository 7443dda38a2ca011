"""500 subscribe requests from 16 threads against the endpoint in a real threaded server."""

import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from newsletter.outgoing.ledger import MailLedger
from newsletter.ratelimit import Rate
from newsletter.subscriptions.subscribers import CONFIRMATION
from tests.newsletter_helpers import start_endpoint, wait_for_emails

pytestmark = pytest.mark.slow  # 500 requests to a real server

DISTINCT = 250
THREADS = 16


def test_500_concurrent_subscribes_store_each_address_once(tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    endpoint = start_endpoint(
        tmp_path, site_url="http://localhost:8000", rate_limit=Rate(100_000, 60)
    )  # the site the posts below name as their source
    # Every address twice, the second time in other letter case, all shuffled: the same
    # address often arrives twice at the same moment.
    addresses = [f"reader{n}@example.com" for n in range(DISTINCT)]
    posts = addresses + [a.upper().replace("@EXAMPLE.COM", "@Example.com") for a in addresses]
    random.Random(3).shuffle(posts)
    local = {}

    def post(address):
        session = local.setdefault(threading.get_ident(), requests.Session())
        answer = session.post(
            endpoint.url + "/subscribe",
            data={"email": address, "source": "http://localhost:8000/"},
            headers={"Accept": "application/json"},
            timeout=30,
        )
        return answer.status_code, answer.text

    try:
        with ThreadPoolExecutor(THREADS) as pool:
            answers = list(pool.map(post, posts))
        outbox = wait_for_emails(endpoint.nl.settings.outbox, DISTINCT, timeout=30)
        store = endpoint.nl.subscribers
        subscribers = store.list()
        emails = MailLedger(store.database).rows(CONFIRMATION)
    finally:
        endpoint.stop()
        for session in local.values():
            session.close()

    assert len(answers) == 500
    assert {status for status, _ in answers} == {200}, [a for a in answers if a[0] != 200][:3]
    assert all("locked" not in text for _, text in answers)
    assert len(subscribers) == DISTINCT
    assert sorted(s.email_key for s in subscribers) == sorted(addresses)
    assert len(emails) == DISTINCT  # one confirmation per address, never two
    assert sorted(m["To"].addresses[0].addr_spec.lower() for m in outbox) == sorted(addresses)
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [p for p in problems if "locked" in p or "database" in p], problems
