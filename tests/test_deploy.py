"""The deployment in deploy/, run for real on 127.0.0.1 (docs/deployment.md): the files are
rendered by deploy/render.py with this machine's values (127.0.0.1, free ports, a throwaway
self-signed certificate, the repository as APP_DIR), `nginx -t` accepts the site, and Debian's
nginx serves a freshly built site in front of one gunicorn started with the very command, working
folder and umask of walkagain-newsletter.service, in production mode behind one proxy
(NEWSLETTER_PROXY_COUNT=1), on a SQLite file and an outbox in a temporary folder. Through nginx:
the site and its 404 page, the redirect to HTTPS, a reader who subscribes with the site's form and
confirms by the emailed link, the security headers, a body over 16 KB stopped by nginx, the per-IP
limit applied to the client nginx saw whatever X-Forwarded-For it sent, and the announce unit's
command mailing a new article to each confirmed reader once. `systemd-analyze verify` accepts the
units where it exists. Everything started here is stopped by its pid."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import ssl
import subprocess
import time
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from bs4 import BeautifulSoup

from tests.announce_helpers import outbox_messages, recent
from tests.conftest import SECRET_KEY, build_site, write_article
from tests.newsletter_helpers import email_to, link

pytestmark = pytest.mark.slow  # nginx, gunicorn (3 workers) and invoke in subprocesses

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SBIN = os.pathsep.join(["/usr/local/sbin", "/usr/sbin", "/sbin"])
NGINX = shutil.which("nginx", path=os.environ.get("PATH", "") + os.pathsep + SBIN)
RATE = 3  # sign-ups per client address and hour
LIMIT = 16 * 1024


def load_render():
    """deploy/render.py, by its path (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def service_section(unit: Path) -> dict[str, str]:
    """The [Service] settings of a rendered unit (one line each in ours)."""
    section, values = None, {}
    for line in unit.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == "Service" and "=" in line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def machine_values(folder: Path, **ports) -> dict[str, str]:
    """This machine's values for every placeholder: 127.0.0.1, the given ports, the repository
    as APP_DIR (so the units' commands are the repository's own), files under `folder`."""
    return {
        "SERVER_NAME": "127.0.0.1",
        "HTTPS_LISTEN": f"127.0.0.1:{ports.get('https', 8443)}",
        "HTTP_LISTEN": f"127.0.0.1:{ports.get('http', 8080)}",
        "TLS_CERT": str(folder / "cert.pem"),
        "TLS_KEY": str(folder / "key.pem"),
        "SITE_ROOT": str(folder / "site"),
        "APP_DIR": str(ROOT),
        "ENV_FILE": str(folder / "newsletter.env"),
        "SERVICE_USER": pwd.getpwuid(os.getuid()).pw_name,
        "ENDPOINT_PORT": str(ports.get("endpoint", 5000)),
    }


def nginx_conf(folder: Path, site: Path, connections: int = 256) -> Path:
    """A minimal nginx.conf around the rendered site, every path it writes under `folder`."""
    temp = folder / "nginx-temp"
    temp.mkdir()
    mime = Path("/etc/nginx/mime.types")
    lines = [
        "daemon off;",
        "worker_processes 1;",
        f"pid {folder / 'nginx.pid'};",
        f"error_log {folder / 'nginx-error.log'} warn;",
        # As root, the workers would be `nobody`, who cannot read pytest's 0700 folders.
        "user root;" if os.geteuid() == 0 else "",
        f"events {{ worker_connections {connections}; }}",
        "http {",
        f"    include {mime};" if mime.is_file() else "",
        "    default_type application/octet-stream;",
        f"    access_log {folder / 'nginx-access.log'};",
        *(f"    {kind}_temp_path {temp / kind};" for kind in
          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")),
        f"    include {site};",
        "}",
    ]  # fmt: skip
    conf = folder / "nginx.conf"
    conf.write_text("\n".join(line for line in lines if line) + "\n", encoding="utf-8")
    return conf


def nginx(folder: Path, conf: Path, *args: str) -> list[str]:
    """The nginx command line for `conf`, its prefix and error log under `folder`."""
    command = [NGINX, "-c", str(conf), "-p", str(folder), "-e", str(folder / "nginx-error.log")]
    return command + list(args)


def self_signed_certificate(cert: Path, key: Path) -> None:
    """A throwaway certificate for 127.0.0.1 (the openssl command; bin/setup --test has it)."""
    if shutil.which("openssl") is None:
        pytest.fail("the openssl command is missing: bash bin/setup --test installs it")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip


def settings_env(url: str, folder: Path) -> dict[str, str]:
    """The newsletter's settings as the env file holds them (docs/deployment.md), production."""
    return {
        "NEWSLETTER_ENV": "production",
        "NEWSLETTER_SECRET_KEY": SECRET_KEY,
        "NEWSLETTER_DATABASE": str(folder / "var" / "newsletter.sqlite3"),
        "NEWSLETTER_OUTBOX": str(folder / "var" / "outbox"),
        "NEWSLETTER_SITE_URL": url,
        "NEWSLETTER_BASE_URL": url + "/newsletter",
        "NEWSLETTER_FEED_URL": url + "/feeds/all.rss.xml",
        "NEWSLETTER_FROM": "Walk Again <news@walkagain.example>",
        "NEWSLETTER_POSTAL_ADDRESS": "Walk Again, 2 Mill Lane, Leeds LS1 1AA, United Kingdom",
        "NEWSLETTER_TRANSPORT": "outbox",
        "NEWSLETTER_PROXY_COUNT": "1",
        "NEWSLETTER_RATE_LIMIT": f"{RATE}/hour",
    }


def stop(process: subprocess.Popen, name: str) -> None:
    """SIGTERM (nginx: fast shutdown; gunicorn: graceful), then SIGKILL to its own group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # its own session: start_new_session=True
            process.wait(5)
            raise AssertionError(f"{name} did not stop on SIGTERM") from None


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


@dataclass
class Stack:
    url: str  # https://127.0.0.1:PORT, the site's origin
    https_port: int
    http_port: int
    folder: Path
    cert: Path
    content: Path
    rendered: Path
    conf: Path
    env: dict[str, str]  # the environment the units' commands run with

    @property
    def database(self) -> Path:
        return Path(self.env["NEWSLETTER_DATABASE"])

    @property
    def outbox(self) -> Path:
        return Path(self.env["NEWSLETTER_OUTBOX"])

    def request(self, method: str, path: str, body: bytes | None = None, *,
                headers: dict | None = None, client: str = "127.0.0.1") -> Answer:  # fmt: skip
        """One HTTPS request to nginx from the local address `client`, the certificate trusted."""
        context = ssl.create_default_context(cafile=str(self.cert))
        connection = http.client.HTTPSConnection(
            "127.0.0.1", self.https_port, context=context, timeout=20, source_address=(client, 0)
        )
        try:
            connection.request(method, path, body, headers or {})
            answer = connection.getresponse()
            return Answer(answer.status, answer.headers, answer.read())
        finally:
            connection.close()

    def sign_up(self, email: str, *, client: str, headers: dict | None = None) -> Answer:
        return self.request(
            "POST", "/newsletter/subscribe", urlencode({"email": email}).encode(),
            headers={"Content-Type": "application/x-www-form-urlencoded",
                     "Accept": "application/json", **(headers or {})},
            client=client,
        )  # fmt: skip

    def status_of(self, email: str) -> str | None:
        db = sqlite3.connect(self.database, timeout=30)
        try:
            row = db.execute("SELECT status FROM subscribers WHERE email_key = ?", (email,))
            found = row.fetchone()
            return found and found[0]
        finally:
            db.close()

    def build(self) -> None:
        build_site(
            self.folder / "site", self.url, PATH=self.content, ISSO_URL="",
            NEWSLETTER_URL=self.url + "/newsletter/subscribe",
        )  # fmt: skip


def wait_until(ready, what: str, processes, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        for process, log in processes:
            if process.poll() is not None:
                pytest.fail(f"{what}: exited with {process.returncode}\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not ready after {timeout} s")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    if NGINX is None:
        pytest.fail("nginx is missing: bash bin/setup --test installs it (Debian's nginx)")
    folder = tmp_path_factory.mktemp("deploy")
    https_port, http_port, endpoint_port = free_port(), free_port(), free_port()
    url = f"https://127.0.0.1:{https_port}"
    values = machine_values(folder, https=https_port, http=http_port, endpoint=endpoint_port)
    self_signed_certificate(Path(values["TLS_CERT"]), Path(values["TLS_KEY"]))
    rendered = folder / "rendered"
    render.render_all(values, rendered)
    env_values = settings_env(url, folder)
    env_file = Path(values["ENV_FILE"])  # as docs/deployment.md shows it, for the units
    env_file.write_text("".join(f"{k}={shlex.quote(v)}\n" for k, v in env_values.items()))
    env_file.chmod(0o600)
    content = folder / "content"
    shutil.copytree(ROOT / "content", content)
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    # The machine trusts the site's certificate (requests, and urllib through ssl's defaults)
    env.update(env_values, REQUESTS_CA_BUNDLE=str(folder / "cert.pem"),
               SSL_CERT_FILE=str(folder / "cert.pem"))  # fmt: skip
    conf = nginx_conf(folder, rendered / "nginx-site.conf")
    stack = Stack(url, https_port, http_port, folder, folder / "cert.pem", content, rendered,
                  conf, env)  # fmt: skip
    stack.build()

    checked = subprocess.run(nginx(folder, conf, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr

    unit = service_section(rendered / "walkagain-newsletter.service")
    gunicorn_log = folder / "gunicorn.log"
    with gunicorn_log.open("wb") as log:
        gunicorn = subprocess.Popen(
            shlex.split(unit["ExecStart"]), cwd=unit["WorkingDirectory"], env=env,
            umask=int(unit["UMask"], 8), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    nginx_log = folder / "nginx-error.log"
    try:
        server = subprocess.Popen(
            nginx(folder, conf), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            processes = [(gunicorn, gunicorn_log), (server, nginx_log)]

            def healthy() -> bool:
                try:
                    return stack.request("GET", "/newsletter/healthz").status == 200
                except (OSError, http.client.HTTPException):
                    return False

            wait_until(healthy, "nginx and gunicorn", processes)
            yield stack
        finally:
            stop(server, "nginx")
    finally:
        stop(gunicorn, "gunicorn")


def headers_named(answer: Answer, name: str) -> list[str]:
    return answer.headers.get_all(name) or []


# nginx accepts the site ---------------------------------------------------------------------
def test_nginx_t_accepts_the_rendered_site(stack):
    checked = subprocess.run(nginx(stack.folder, stack.conf, "-t"), capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert "syntax is ok" in checked.stderr and "test is successful" in checked.stderr
    site = (stack.rendered / "nginx-site.conf").read_text()
    assert f"listen 127.0.0.1:{stack.https_port} ssl" in site and "${" not in site


# The static site ----------------------------------------------------------------------------
def test_the_site_its_feed_and_its_404_page_are_served(stack):
    home = stack.request("GET", "/")
    assert home.status == 200, home.text
    assert home.headers["Content-Type"].startswith("text/html")
    assert "<title>Walk Again" in home.text
    feed = stack.request("GET", "/feeds/all.rss.xml")
    assert feed.status == 200 and b"<rss" in feed.body
    missing = stack.request("GET", "/no-such-page/")
    assert missing.status == 404
    assert "Page not found" in missing.text  # the theme's page, not nginx's


def test_plain_http_redirects_to_https(stack):
    connection = http.client.HTTPConnection("127.0.0.1", stack.http_port, timeout=10)
    try:
        connection.request("GET", "/2026/some-article/?x=1")
        answer = connection.getresponse()
        assert answer.status == 301
        assert answer.headers["Location"] == "https://127.0.0.1/2026/some-article/?x=1"
    finally:
        connection.close()


def test_security_headers_on_the_site_and_on_the_endpoint(stack):
    for path in ("/", "/no-such-page/"):
        page = stack.request("GET", path)
        assert headers_named(page, "Strict-Transport-Security") == ["max-age=31536000"]
        assert headers_named(page, "X-Content-Type-Options") == ["nosniff"]
        assert headers_named(page, "Referrer-Policy") == ["strict-origin-when-cross-origin"]
        assert headers_named(page, "X-Frame-Options") == ["SAMEORIGIN"]
        assert page.headers["Server"] == "nginx"  # no version (server_tokens off)

    endpoint = stack.request("GET", "/newsletter/subscribe", headers={"Accept": "text/html"})
    assert endpoint.status == 200
    # The endpoint's own headers, each once: nginx adds only HSTS there.
    assert headers_named(endpoint, "Strict-Transport-Security") == ["max-age=31536000"]
    assert headers_named(endpoint, "X-Content-Type-Options") == ["nosniff"]
    assert headers_named(endpoint, "Referrer-Policy") == ["no-referrer"]
    (policy,) = headers_named(endpoint, "Content-Security-Policy")
    assert "frame-ancestors 'none'" in policy and f"form-action 'self' {stack.url}" in policy
    assert endpoint.headers["Cache-Control"] == "no-store"


# The newsletter through nginx ---------------------------------------------------------------
def test_a_reader_subscribes_with_the_sites_form_and_confirms_by_the_emailed_link(stack):
    home = BeautifulSoup(stack.request("GET", "/").text, "html.parser")
    form = home.select_one("form.subscribe-form")
    assert form["action"] == stack.url + "/newsletter/subscribe"  # the site posts to nginx
    fields = {i["name"]: i.get("value", "") for i in form.select("input[name]")
              if i.get("type") not in ("radio", "checkbox") or i.has_attr("checked")}  # fmt: skip
    fields["email"] = "Reader@Example.com"
    answer = stack.request(
        "POST", urlsplit(form["action"]).path, urlencode(fields).encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"}, client="127.0.0.6",
    )  # fmt: skip
    assert answer.status == 200 and "Check your inbox" in answer.text

    message = email_to(stack.outbox, "Reader@example.com", timeout=20)
    confirm = link(message, "confirm")
    assert confirm.startswith(stack.url + "/newsletter/confirm/")
    path = urlsplit(confirm).path
    page = stack.request("GET", path)
    assert page.status == 200 and "Confirm your subscription" in page.text
    assert stack.status_of("reader@example.com") == "unconfirmed"  # a GET confirms nothing
    done = stack.request("POST", path, b"", headers={"Origin": stack.url})
    assert done.status == 200 and "You’re subscribed" in done.text
    assert stack.status_of("reader@example.com") == "confirmed"
    # UMask=0077 and the code: only the service reads what names subscribers.
    for private in (stack.database, *stack.outbox.glob("*.eml")):
        assert private.stat().st_mode & 0o077 == 0, private


def test_a_body_over_16_kb_is_refused_by_nginx_and_one_under_reaches_the_endpoint(stack):
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json"}
    big = urlencode({"email": "big@example.com", "pad": "a" * (LIMIT + 4096)}).encode()
    refused = stack.request("POST", "/newsletter/subscribe", big, headers=headers,
                            client="127.0.0.7")  # fmt: skip
    assert refused.status == 413
    assert b"nginx" in refused.body  # nginx's own page: gunicorn never read the body
    small = urlencode({"email": "small@example.com", "pad": "a" * (LIMIT - 1024)}).encode()
    passed = stack.request("POST", "/newsletter/subscribe", small, headers=headers,
                           client="127.0.0.7")  # fmt: skip
    assert passed.status == 200 and passed.json()["ok"] is True
    assert "buffered to a temporary file" not in (stack.folder / "nginx-error.log").read_text()


def test_the_per_ip_limit_applies_to_the_client_nginx_saw(stack):
    first = [stack.sign_up(f"two-{n}@example.com", client="127.0.0.2") for n in range(RATE)]
    assert [a.status for a in first] == [200] * RATE
    # An X-Forwarded-For of its own does not buy a client a fresh limit: nginx replaces it.
    spoofed = stack.sign_up(
        "two-spoofed@example.com", client="127.0.0.2",
        headers={"X-Forwarded-For": "198.51.100.7"},
    )  # fmt: skip
    assert spoofed.status == 429, spoofed.text
    assert 1 <= int(spoofed.headers["Retry-After"]) <= 3600
    # ... nor spends another's: 127.0.0.3 naming 127.0.0.2 still has its own.
    other = [
        stack.sign_up(f"three-{n}@example.com", client="127.0.0.3",
                      headers={"X-Forwarded-For": "127.0.0.2"})
        for n in range(RATE)
    ]  # fmt: skip
    assert [a.status for a in other] == [200] * RATE
    assert stack.sign_up("three-more@example.com", client="127.0.0.3").status == 429


# The announce unit, against the live site --------------------------------------------------
def run_unit(stack: Stack, name: str) -> subprocess.CompletedProcess:
    unit = service_section(stack.rendered / name)
    return subprocess.run(
        shlex.split(unit["ExecStart"]), cwd=unit["WorkingDirectory"], env=stack.env,
        umask=int(unit["UMask"], 8), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def announcements(stack: Stack, title: str) -> list[EmailMessage]:
    return [m for m in outbox_messages(stack.outbox) if title in str(m["Subject"])]


def test_the_announce_unit_mails_a_new_article_to_each_confirmed_reader_once(stack):
    from newsletter.subscriptions.addresses import normalize
    from newsletter.subscriptions.subscribers import Status, Subscribers

    store = Subscribers.open(stack.database)
    try:
        for address in ("ann@example.com", "bob@example.com"):
            store.add(*normalize(address), status=Status.CONFIRMED)
    finally:
        store.close()
    first = run_unit(stack, "walkagain-announce.service")  # the feed as it is: recorded
    assert first.returncode == 0, first.stdout + first.stderr

    title = "Walking again after the operation"
    write_article(stack.content, "walking-again", title, recent(1))
    stack.build()
    second = run_unit(stack, "walkagain-announce.service")
    assert second.returncode == 0, second.stdout + second.stderr
    third = run_unit(stack, "walkagain-announce.service")  # nothing new: nothing sent
    assert third.returncode == 0, third.stdout + third.stderr

    db = sqlite3.connect(stack.database)
    try:
        confirmed = sorted(r[0] for r in db.execute(
            "SELECT email FROM subscribers WHERE status = 'confirmed'"))  # fmt: skip
    finally:
        db.close()
    sent = sorted(str(m["To"]) for m in announcements(stack, title))
    assert sent == confirmed and {"ann@example.com", "bob@example.com"} <= set(sent)


def test_the_reminders_unit_sends_a_followed_plans_due_week_once(stack):
    """A reader follows the live site's plan; its week 1 is due: the unit (no --as-of: now)
    reads exercises/plans.json over HTTPS and sends it, and a second run sends nothing."""
    from newsletter.database import Database, stamp, utcnow
    from newsletter.subscriptions.addresses import normalize
    from newsletter.subscriptions.subscribers import new_nonce, new_public_id

    plan = stack.request("GET", "/exercises/plans.json").json()["plans"][0]
    database = Database(stack.database)
    try:
        started = stamp(utcnow() - timedelta(hours=1))
        with database.transaction() as db:
            db.execute(
                "INSERT INTO plan_follows (public_id, email, email_key, plan_id, weekday, hour,"
                " weeks, status, confirm_nonce, created_at, confirmed_at, starts_at)"
                " VALUES (?, ?, ?, ?, 0, 8, ?, 'following', ?, ?, ?, ?)",
                (new_public_id(), *normalize("plan.reader@example.com"), plan["id"],
                 plan["weeks"], new_nonce(), started, started, started),
            )  # fmt: skip
    finally:
        database.close()
    runs = [run_unit(stack, "walkagain-reminders.service") for _ in range(2)]
    for done in runs:
        assert done.returncode == 0, done.stdout + done.stderr
    assert "owed 1 weekly and 0 closing email(s); sent 1," in runs[0].stdout
    assert "owed 0 weekly and 0 closing email(s); sent 0," in runs[1].stdout
    week1 = [m for m in outbox_messages(stack.outbox) if str(m["To"]) == "plan.reader@example.com"]
    assert [str(m["Subject"]) for m in week1] == [f"Week 1 of {plan['weeks']}: {plan['title']}"]
    assert week1[0]["List-Unsubscribe"].startswith(f"<{stack.url}/newsletter/plans/stop/")


# The units ----------------------------------------------------------------------------------
def test_systemd_analyze_verify_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze", path=os.environ.get("PATH", "") + os.pathsep + SBIN)
    if analyze is None:
        pytest.skip("systemd-analyze is missing (Debian's systemd package has it)")
    rendered = tmp_path / "rendered"
    render.render_all(machine_values(tmp_path), rendered)
    (tmp_path / "newsletter.env").write_text("NEWSLETTER_ENV=production\n")
    units = sorted(str(p) for p in rendered.iterdir() if p.suffix in (".service", ".timer"))
    assert len(units) == 7
    checked = subprocess.run(
        [analyze, "verify", "--man=no", *units], capture_output=True, text=True, timeout=60
    )
    ours = [line for line in (checked.stdout + checked.stderr).splitlines()
            if re.search(r"walkagain-", line)]  # fmt: skip
    assert checked.returncode == 0 and ours == [], checked.stdout + checked.stderr
