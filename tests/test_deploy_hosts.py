"""Two hosts on one list (docs/deployment.md, "Outgrowing one machine"): the deployment in
deploy/ rendered twice, each "host" its own nginx in front of its own gunicorn (the very command,
working folder and umask of walkagain-newsletter.service), in its own folder (env file, outbox),
both on one PostgreSQL database of the test run's own server; announce runs from a third folder.
Through the two nginx: a reader subscribes on one host and confirms on the other; the per-IP
limit counts sign-ups on both; a SIGKILL of one host's gunicorn in the middle of 500 concurrent
sign-ups loses none that was answered; the announce unit's command mails a new article to each
confirmed reader exactly once. Everything started here is stopped by its pid."""

from __future__ import annotations

import http.client
import os
import shlex
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests import backends
from tests.announce_helpers import outbox_messages, recent
from tests.conftest import ROOT, write_article
from tests.newsletter_helpers import email_to, link
from tests.test_deploy import (
    NGINX,
    RATE,
    Stack,
    free_port,
    machine_values,
    nginx,
    nginx_conf,
    render,
    self_signed_certificate,
    service_section,
    settings_env,
    stop,
    wait_until,
)

pytestmark = pytest.mark.slow  # two nginx, two gunicorn (3 workers each), PostgreSQL

SIGN_UPS = 500


@dataclass
class Host:
    name: str
    stack: Stack  # its nginx (requests), folder, env
    gunicorn: subprocess.Popen
    nginx: subprocess.Popen
    log: Path


class TwoHosts:
    def __init__(self, database: str, hosts: list[Host], third: dict[str, str], rendered: Path):
        self.database, self.hosts, self.third, self.rendered = database, hosts, third, rendered

    def status_of(self, email_key: str) -> str | None:
        found = backends.query(
            self.database, "SELECT status FROM subscribers WHERE email_key = ?", email_key
        )
        return found[0][0] if found else None

    def stored(self) -> set[str]:
        """Every address a sign-up left: a subscriber, or a request not yet taken up."""
        rows = backends.query(
            self.database,
            "SELECT email_key FROM subscribers UNION SELECT email_key FROM signup_requests",
        )
        return {key for (key,) in rows}


def start_host(name: str, folder: Path, https: int, public: str, database: str, cert: Path,
               key: Path, site: Path, content: Path,
               extra: dict | None = None) -> Host:  # fmt: skip
    folder.mkdir()
    http, endpoint = free_port(), free_port()
    values = machine_values(folder, https=https, http=http, endpoint=endpoint)
    values.update(TLS_CERT=str(cert), TLS_KEY=str(key), SITE_ROOT=str(site))
    rendered = folder / "rendered"
    render.render_all(values, rendered)
    env_values = settings_env(public, folder)  # one public URL: a load balancer's name
    env_values["NEWSLETTER_DATABASE"] = database
    env_values.update(extra or {})
    env_file = Path(values["ENV_FILE"])
    env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env_values.items()))
    env_file.chmod(0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(env_values, REQUESTS_CA_BUNDLE=str(cert), SSL_CERT_FILE=str(cert))
    conf = nginx_conf(folder, rendered / "nginx-site.conf")
    checked = subprocess.run(nginx(folder, conf, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    stack = Stack(f"https://127.0.0.1:{https}", https, http, folder, cert, content, rendered,
                  conf, env)  # fmt: skip
    log = folder / "gunicorn.log"
    gunicorn = start_gunicorn(stack, log)
    server = subprocess.Popen(nginx(folder, conf), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    host = Host(name, stack, gunicorn, server, log)
    wait_healthy(host)
    return host


def start_gunicorn(stack: Stack, log: Path) -> subprocess.Popen:
    """The host's gunicorn, with walkagain-newsletter.service's command, folder and umask."""
    unit = service_section(stack.rendered / "walkagain-newsletter.service")
    with log.open("ab") as out:
        return subprocess.Popen(
            shlex.split(unit["ExecStart"]), cwd=unit["WorkingDirectory"], env=stack.env,
            umask=int(unit["UMask"], 8), stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


def wait_healthy(host: Host) -> None:
    def healthy() -> bool:
        try:
            return host.stack.request("GET", "/newsletter/healthz").status == 200
        except OSError:
            return False

    processes = [(host.gunicorn, host.log), (host.nginx, host.stack.folder / "nginx-error.log")]
    wait_until(healthy, f"host {host.name}", processes)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory, postgres_server):
    if NGINX is None:
        pytest.fail("nginx is missing: bash bin/setup --test installs it (Debian's nginx)")
    folder = tmp_path_factory.mktemp("hosts")
    database = postgres_server.fresh()
    cert, key = folder / "cert.pem", folder / "key.pem"
    self_signed_certificate(cert, key)
    content = folder / "content"
    shutil.copytree(ROOT / "content", content)
    started: list[Host] = []
    ports = {"a": free_port(), "b": free_port()}
    public = f"https://127.0.0.1:{ports['a']}"  # both hosts answer for one public name
    try:
        for name in ("a", "b"):
            started.append(start_host(name, folder / name, ports[name], public, database, cert,
                                      key, folder / "a" / "site", content))  # fmt: skip
        third = dict(started[0].stack.env, NEWSLETTER_OUTBOX=str(folder / "third" / "outbox"))
        started[0].stack.build()  # the one site both nginx serve (host a's folder)
        yield TwoHosts(database, started, third, started[0].stack.rendered)
    finally:
        for host in started:
            stop(host.nginx, f"nginx {host.name}")
            if host.gunicorn.poll() is None:
                stop(host.gunicorn, f"gunicorn {host.name}")


def test_a_reader_subscribes_on_one_host_and_confirms_on_the_other(hosts):
    a, b = hosts.hosts
    answer = a.stack.sign_up("Walker@Example.com", client="127.0.0.21")
    assert answer.status == 200, answer.text
    outboxes = [host.stack.outbox for host in hosts.hosts]
    message = email_to_either(outboxes, "Walker@example.com")
    path = urlsplit(link(message, "confirm")).path
    page = b.stack.request("GET", path)
    assert page.status == 200 and "Confirm your subscription" in page.text
    assert hosts.status_of("walker@example.com") == "unconfirmed"  # a GET confirms nothing
    done = b.stack.request("POST", path, b"", headers={"Origin": a.stack.url})
    assert done.status == 200 and "You’re subscribed" in done.text
    assert hosts.status_of("walker@example.com") == "confirmed"


def email_to_either(outboxes: list[Path], address: str, timeout: float = 30):
    """The email to `address` from whichever host's background sender sent it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for outbox in outboxes:
            try:
                return email_to(outbox, address, timeout=0)
            except (AssertionError, FileNotFoundError):
                continue
        time.sleep(0.05)
    pytest.fail(f"no email to {address} in {outboxes}")


def test_the_per_ip_limit_counts_sign_ups_on_both_hosts(hosts):
    a, b = hosts.hosts
    answers = [(a if n % 2 else b).stack.sign_up(f"limit-{n}@example.com", client="127.0.0.22")
               for n in range(RATE)]  # fmt: skip
    assert [x.status for x in answers] == [200] * RATE
    for host in (a, b):  # the next one is refused whichever host it reaches
        refused = host.stack.sign_up("limit-more@example.com", client="127.0.0.22")
        assert refused.status == 429, refused.text


def test_a_sigkill_of_one_host_in_the_middle_of_500_sign_ups_loses_none(hosts):
    a, b = hosts.hosts
    answered: list[str] = []
    lock = threading.Lock()
    killed = threading.Event()

    def sign_up(n: int) -> None:
        host = a if n % 2 else b
        email = f"load-{n}@example.com"
        client = f"127.3.{n // 200}.{n % 200 + 1}"  # one client each: no limit in the way
        try:
            answer = host.stack.sign_up(email, client=client)
        except (OSError, http.client.HTTPException):  # reset, or an answer cut off mid-body
            return  # the connection died with the host: not answered, may or may not be kept
        if answer.status == 200:
            with lock:
                answered.append(email)
                if len(answered) == 150 and not killed.is_set():
                    killed.set()
                    os.killpg(a.gunicorn.pid, signal.SIGKILL)

    try:
        with ThreadPoolExecutor(16) as pool:
            list(pool.map(sign_up, range(SIGN_UPS)))
        a.gunicorn.wait(10)
        assert killed.is_set() and a.gunicorn.returncode is not None
    finally:  # the host comes back (systemd's Restart=), for the module's other tests too
        if a.gunicorn.poll() is None:
            os.killpg(a.gunicorn.pid, signal.SIGKILL)
            a.gunicorn.wait(10)
        a.gunicorn = start_gunicorn(a.stack, a.log)
        wait_healthy(a)
    assert len(answered) >= SIGN_UPS // 2  # host b answered its half at least
    missing = set(answered) - hosts.stored()
    assert not missing, f"{len(missing)} answered sign-ups were lost, e.g. {sorted(missing)[:3]}"


def test_announce_from_a_third_folder_mails_each_confirmed_reader_once(hosts):
    from newsletter.subscriptions.addresses import normalize
    from newsletter.subscriptions.subscribers import Status, Subscribers

    store = Subscribers.open(hosts.database)
    try:
        for address in ("ann@example.com", "bob@example.com"):
            store.add(*normalize(address), status=Status.CONFIRMED)
    finally:
        store.close()
    unit = service_section(hosts.rendered / "walkagain-announce.service")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run(
            shlex.split(unit["ExecStart"]), cwd=unit["WorkingDirectory"], env=hosts.third,
            umask=int(unit["UMask"], 8), capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    first = run()  # the feed as it is: recorded
    assert first.returncode == 0, first.stdout + first.stderr
    title = "Two hosts, one list"
    site = hosts.hosts[0].stack
    write_article(site.content, "two-hosts", title, recent(1))
    site.build()
    for _ in range(2):  # the second run finds nothing new
        done = run()
        assert done.returncode == 0, done.stdout + done.stderr
    confirmed = sorted(
        email
        for (email,) in backends.query(
            hosts.database, "SELECT email FROM subscribers WHERE status = 'confirmed'"
        )
    )
    outbox = Path(hosts.third["NEWSLETTER_OUTBOX"])
    sent = sorted(str(m["To"]) for m in outbox_messages(outbox) if title in str(m["Subject"]))
    assert sent == confirmed and {"ann@example.com", "bob@example.com"} <= set(sent)
