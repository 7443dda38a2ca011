"""The one file lock (flock): a second holder is refused at once, told who holds it; releasing
lets the next one in; a holder killed with SIGKILL leaves no stale lock."""

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from newsletter.filelock import FileLock, Locked

ROOT = Path(__file__).resolve().parent.parent
HOLDER = textwrap.dedent(
    """
    import sys, time
    from newsletter.filelock import FileLock
    lock = FileLock(sys.argv[1])
    lock.acquire()
    print("locked", flush=True)
    time.sleep(60)
    """
)

pytestmark = pytest.mark.skipif(os.name != "posix", reason="flock is POSIX only")


def test_a_second_lock_is_refused_naming_the_holder(tmp_path):
    path = tmp_path / "run.lock"
    first = FileLock(path)
    first.acquire(wait=False)
    try:
        with pytest.raises(Locked) as refused:
            FileLock(path).acquire(wait=False)
        assert f"held by pid {os.getpid()} since " in str(refused.value)
        assert str(path) in str(refused.value)
    finally:
        first.release()


def test_release_lets_the_next_one_take_it(tmp_path):
    path = tmp_path / "run.lock"
    first, second = FileLock(path), FileLock(path)
    first.acquire(wait=False)
    with pytest.raises(Locked):
        second.acquire(wait=False)
    first.release()
    assert not first.held
    second.acquire(wait=False)
    assert second.held
    with pytest.raises(Locked):
        first.acquire(wait=False)  # now the first one is the one refused
    second.release()
    with first:  # and as a context manager
        assert first.held
    assert not first.held


def test_a_waiting_lock_gets_it_when_the_holder_releases(tmp_path):
    path = tmp_path / "run.lock"
    holder = FileLock(path)
    holder.acquire()
    got = threading.Event()

    def waiter():
        with FileLock(path):
            got.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    try:
        assert not got.wait(0.3)  # still waiting while the lock is held
    finally:
        holder.release()
    thread.join(5)
    assert got.is_set()


def test_without_describe_the_refusal_names_no_pid(tmp_path):
    path = tmp_path / "writer.lock"
    quiet = FileLock(path, describe=False)
    quiet.acquire()
    try:
        with pytest.raises(Locked, match="held by another process"):
            FileLock(path, describe=False).acquire(wait=False)
    finally:
        quiet.close()


def test_a_holder_killed_with_sigkill_releases_the_lock(tmp_path):
    path = tmp_path / "run.lock"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(Locked, match=f"held by pid {holder.pid} since "):
            FileLock(path).acquire(wait=False)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(10)
        holder.stdout.close()
    assert holder.returncode == -signal.SIGKILL
    started = time.monotonic()
    lock = FileLock(path)
    lock.acquire(wait=False)  # at once: the kernel dropped the dead holder's lock
    assert lock.held and time.monotonic() - started < 1
    lock.release()
