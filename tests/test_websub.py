"""WebSub: the feeds declare the hub set in WEBSUB_HUB, and publishing tells that hub, here a real
HTTP server on 127.0.0.1 that records every request it gets."""

from __future__ import annotations

import http.server
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs

import feedparser
import pytest

from blog import publish, websub
from blog.build import ROOT, BuildError
from tests.conftest import build_site, write_article

pytestmark = pytest.mark.slow  # invoke publish in a subprocess, a hub over HTTP

SITEURL = "https://blog.example"
FEEDS = ["all.rss.xml", "all.atom.xml", "all.json"]
CATEGORY_FEEDS = [
    *("hips.atom.xml", "hips.json", "hips.rss.xml"),
    *("rehab.atom.xml", "rehab.json", "rehab.rss.xml"),
]


@dataclass
class Hub:
    """A stand-in hub: answers every POST with `status` (and `body`), recording each request."""

    status: int = 204
    body: bytes = b""
    delay: float = 0.0
    requests: list = field(default_factory=list)
    url: str = ""
    httpd: http.server.ThreadingHTTPServer | None = None

    def start(self):
        hub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                hub.requests.append(
                    {
                        "path": self.path,
                        "content_type": self.headers.get("Content-Type"),
                        "form": parse_qs(self.rfile.read(length).decode(), strict_parsing=True),
                    }
                )
                time.sleep(hub.delay)
                try:
                    self.send_response(hub.status)
                    self.send_header("Content-Length", str(len(hub.body)))
                    self.end_headers()
                    self.wfile.write(hub.body)
                except OSError:  # the publisher gave up waiting (a timeout test)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = False  # stop() waits for every answer in progress
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hub"
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def hub():
    running = Hub().start()
    yield running
    running.stop()


@pytest.fixture
def content(content_dir):
    write_article(content_dir, "one", "Knees first", "2026-01-01 10:00", category="Rehab")
    write_article(content_dir, "two", "Then hips", "2026-02-01 10:00", category="Hips")
    return content_dir


def build(tmp_path, content, **settings):
    output = tmp_path / "output"
    build_site(output, SITEURL, PATH=content, **settings)
    return output


def feed_links(output, name):
    feed = feedparser.parse((output / "feeds" / name).read_bytes())
    assert not feed.bozo, feed.get("bozo_exception")
    return {(link.rel, link.href) for link in feed.feed.links}


def test_no_hub_by_default_nothing_declared_nothing_pinged(tmp_path, content, hub, monkeypatch):
    monkeypatch.delenv("WEBSUB_HUB", raising=False)
    output = build(tmp_path, content)
    for name in ("all.rss.xml", "all.atom.xml", "rehab.rss.xml"):
        links = feed_links(output, name)
        assert ("self", f"{SITEURL}/feeds/{name}") in links
        assert not [href for rel, href in links if rel == "hub"]
    assert "hubs" not in json.loads((output / "feeds" / "all.json").read_text())
    accepted, lines = publish.after_upload(output, "publishconf.py", SITEURL=SITEURL)
    assert (accepted, lines, hub.requests) == (True, [], [])


def test_every_feed_declares_the_hub_and_itself(tmp_path, content, hub):
    output = build(tmp_path, content, WEBSUB_HUB=hub.url)
    for name in ["all.rss.xml", "all.atom.xml", *CATEGORY_FEEDS]:
        if name.endswith(".json"):
            feed = json.loads((output / "feeds" / name).read_text())
            assert feed["hubs"] == [{"type": "WebSub", "url": hub.url}], name
            assert feed["feed_url"] == f"{SITEURL}/feeds/{name}"
        else:
            links = feed_links(output, name)
            assert {("hub", hub.url), ("self", f"{SITEURL}/feeds/{name}")} <= links, name
    rss = (output / "feeds" / "all.rss.xml").read_text()
    assert f'<atom:link href="{hub.url}" rel="hub"/>' in rss


def test_publish_pings_the_hub_once_per_feed(tmp_path, content, hub):
    output = build(tmp_path, content, WEBSUB_HUB=hub.url)
    accepted, lines = publish.after_upload(
        output, "publishconf.py", SITEURL=SITEURL, WEBSUB_HUB=hub.url
    )
    feeds = [f"{SITEURL}/feeds/{name}" for name in FEEDS + CATEGORY_FEEDS]
    assert hub.requests == [
        {
            "path": "/hub",
            "content_type": "application/x-www-form-urlencoded",
            "form": {"hub.mode": ["publish"], "hub.url": [feed]},
        }
        for feed in feeds
    ]
    assert accepted
    assert lines == [f"WebSub: {hub.url} told of 9 updated feed(s)"]


def test_a_dry_run_pings_nothing(tmp_path, content, hub):
    output = build(tmp_path, content, WEBSUB_HUB=hub.url)
    accepted, lines = publish.after_upload(
        output, "publishconf.py", dry_run=True, SITEURL=SITEURL, WEBSUB_HUB=hub.url
    )
    assert (accepted, hub.requests) == (True, [])
    assert lines == [f"WebSub: dry run, {hub.url} not told of 9 updated feed(s)"]


def test_a_hub_that_refuses_is_reported_and_the_publish_stands(tmp_path, content, hub):
    hub.status, hub.body = 400, b"hub.url: topic not allowed on this hub"
    output = build(tmp_path, content, WEBSUB_HUB=hub.url)
    accepted, lines = publish.after_upload(
        output, "publishconf.py", SITEURL=SITEURL, WEBSUB_HUB=hub.url
    )
    assert not accepted
    assert len(hub.requests) == 9  # every feed was still offered
    assert lines[0].startswith(f"WebSub: {hub.url} accepted 0 of 9 feed(s); the site is published")
    assert (
        f"  {SITEURL}/feeds/all.rss.xml: the hub {hub.url} refused it: 400 Bad Request: "
        "hub.url: topic not allowed on this hub"
    ) in lines


def test_a_hub_that_cannot_be_reached_is_reported_at_once(tmp_path, content):
    with socket.socket() as free:  # a port nobody listens on
        free.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{free.getsockname()[1]}/hub"
    output = build(tmp_path, content, WEBSUB_HUB=closed)
    started = time.monotonic()
    accepted, lines = publish.after_upload(
        output, "publishconf.py", SITEURL=SITEURL, WEBSUB_HUB=closed
    )
    assert time.monotonic() - started < 5
    assert not accepted
    assert lines[1].startswith(
        f"  {SITEURL}/feeds/all.rss.xml: the hub {closed} could not be reached (ConnectionError"
    )
    assert lines[2] == "  and 8 more feed(s) not tried"


def test_a_hub_that_never_answers_times_out(hub):
    hub.delay = 2
    started = time.monotonic()
    pings = websub.ping(hub.url, [f"{SITEURL}/feeds/all.rss.xml"], timeout=(1, 0.5))
    assert time.monotonic() - started < 1.5
    assert [p.ok for p in pings] == [False]
    assert "could not be reached (ReadTimeout" in pings[0].message


def test_a_hub_that_is_not_a_url_fails_the_build(tmp_path, content):
    with pytest.raises(BuildError, match="WEBSUB_HUB must be an http\\(s\\) URL of a hub"):
        build(tmp_path, content, WEBSUB_HUB="pubsubhubbub.appspot.com")


# `invoke publish` itself: build, a real rsync upload, then the hub -------------------------------
INVOKE = Path(sys.executable).parent / "invoke"
PRODUCTION = "https://walkagain.example"  # publishconf.py's SITEURL when the environment sets none


@pytest.fixture
def local_ssh(tmp_path):
    """PATH with an `ssh` that runs the remote command on this machine, as sshd would (through a
    shell): `rsync -e ssh ... localhost:/folder` is then the real upload, into a local folder."""
    folder = tmp_path / "bin"
    folder.mkdir()
    ssh = folder / "ssh"
    ssh.write_text('#!/bin/sh\n# ssh HOST COMMAND...: run COMMAND here\nshift\nexec sh -c "$*"\n')
    ssh.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def invoke_publish(hub_url, target, path, *args):
    """`invoke publish --target TARGET` in a subprocess, with production's SITEURL. It builds into
    the project's output/ like test_serve.py's publish: every test that reads output/ builds it."""
    drop = ("SITEURL", "ISSO_URL", "NEWSLETTER_URL", "PUBLISH_TARGET", "WEBSUB_HUB")
    env = {key: value for key, value in os.environ.items() if key not in drop}
    env.update(PATH=path, WEBSUB_HUB=hub_url)
    return subprocess.run(
        [str(INVOKE), "publish", "--target", f"localhost:{target}", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


@pytest.mark.usefixtures("project_folders")  # it builds into the project's output/
def test_invoke_publish_uploads_then_pings_the_hub_and_a_refusal_does_not_fail_it(
    tmp_path, hub, local_ssh
):
    site = tmp_path / "site"

    done = invoke_publish(hub.url, site, local_ssh)

    printed = done.stdout + done.stderr
    assert done.returncode == 0, printed
    assert (site / "index.html").is_file()  # uploaded by rsync
    feeds = sorted(
        path.relative_to(site).as_posix()
        for path in (site / "feeds").iterdir()
        if path.name != "topics.json"
    )  # the topics' list for the form: no feed
    assert {"feeds/all.rss.xml", "feeds/all.atom.xml", "feeds/all.json"} <= set(feeds)
    links = feed_links(site, "all.atom.xml")  # the uploaded feeds declare this hub
    assert {("hub", hub.url), ("self", f"{PRODUCTION}/feeds/all.atom.xml")} <= links
    assert [r["form"] for r in hub.requests[:3]] == [
        {"hub.mode": ["publish"], "hub.url": [f"{PRODUCTION}/feeds/{name}"]} for name in FEEDS
    ]  # the site's feeds first, then the categories'
    assert sorted(r["form"]["hub.url"][0] for r in hub.requests) == [
        f"{PRODUCTION}/{name}" for name in feeds
    ]  # one POST per uploaded feed, at its production URL
    assert all(r["form"]["hub.mode"] == ["publish"] for r in hub.requests)
    assert all(r["content_type"] == "application/x-www-form-urlencoded" for r in hub.requests)
    assert f"WebSub: {hub.url} told of {len(feeds)} updated feed(s)" in done.stdout

    hub.requests.clear()
    hub.status, hub.body = 500, b"hub down for maintenance"
    refused = invoke_publish(hub.url, site, local_ssh)

    printed = refused.stdout + refused.stderr
    assert refused.returncode == 0, printed  # the site is up: the hub's refusal does not undo it
    assert len(hub.requests) == len(feeds)
    assert f"WebSub: {hub.url} accepted 0 of {len(feeds)} feed(s); the site is published" in (
        refused.stderr
    )
    assert (
        f"  {PRODUCTION}/feeds/all.rss.xml: the hub {hub.url} refused it: "
        "500 Internal Server Error: hub down for maintenance"
    ) in refused.stderr.splitlines()

    hub.requests.clear()
    hub.status = 204
    untouched = tmp_path / "dry-run"
    untouched.mkdir()
    dry = invoke_publish(hub.url, untouched, local_ssh, "--dry-run")

    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert hub.requests == []  # a dry run pings nothing
    assert f"WebSub: dry run, {hub.url} not told of {len(feeds)} updated feed(s)" in dry.stdout
    assert list(untouched.iterdir()) == []  # and uploads nothing
