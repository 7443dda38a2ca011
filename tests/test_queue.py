"""The confirmation queue on a real SQLite file: each email claimed once, leases, retries."""

import threading
from datetime import timedelta

import pytest

from newsletter.database import utcnow
from newsletter.subscriptions.addresses import normalize
from newsletter.subscriptions.queue import EmailQueue
from newsletter.subscriptions.subscribers import Subscribers


class Clock:
    def __init__(self):
        self.now = utcnow()

    def __call__(self):
        return self.now

    def advance(self, **kwargs):
        self.now += timedelta(**kwargs)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def store(tmp_path, clock):
    store = Subscribers.open(tmp_path / "var" / "newsletter.sqlite3", clock=clock)
    yield store
    store.close()


def subscribe(store, address, **kwargs):
    email, key = normalize(address)
    return store.request_subscription(email, key, **kwargs)


def test_queue_claims_each_email_once_and_retries_with_a_lease(store, clock):
    for n in range(3):
        subscribe(store, f"r{n}@example.com")
    first = EmailQueue(store.database).claim(limit=2)
    assert [e.attempts for e in first] == [1, 1]
    second = EmailQueue(store.database).claim(limit=5)
    assert len(second) == 1 and {e.id for e in first}.isdisjoint({e.id for e in second})
    assert EmailQueue(store.database).claim() == []
    EmailQueue(store.database).mark_sent(first[0].id)
    EmailQueue(store.database).mark_retry(first[1].id, "451 try later", delay=60)
    EmailQueue(store.database).mark_failed(second[0].id, "550 no such user")
    assert EmailQueue(store.database).claim() == []
    clock.advance(seconds=61)
    (retry,) = EmailQueue(store.database).claim()
    assert retry.id == first[1].id and retry.attempts == 2
    # A sender that died mid-send: after the lease its email is claimed again.
    clock.advance(minutes=11)
    (again,) = EmailQueue(store.database).claim()
    assert again.id == retry.id and again.attempts == 3
    counts = EmailQueue(store.database).counts()
    assert counts == {"queued": 0, "sending": 1, "sent": 1, "failed": 1, "skipped": 0}


def test_many_threads_write_without_database_is_locked(tmp_path):
    stores = [Subscribers.open(tmp_path / "busy.sqlite3") for _ in range(2)]  # two "processes"
    errors = []

    def work(n):
        try:
            store = stores[n % 2]
            for i in range(25):
                subscribe(store, f"user{i}@example.com")  # everyone races on the same 25
                subscribe(store, f"t{n}-{i}@example.com")
                EmailQueue(store.database).claim(limit=3)
        except Exception as error:  # noqa: BLE001 - collected and asserted below
            errors.append(repr(error))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(stores[0].counts().values()) == 25 + 8 * 25
    # one confirmation per address
    assert sum(EmailQueue(stores[0].database).counts().values()) == 25 + 8 * 25
    for store in stores:
        store.close()
