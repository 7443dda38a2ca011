"""`invoke serve`, run for real: signals stop its helpers, and a port held by another program is
refused with a message rather than announced as the endpoint (or Isso)."""

from __future__ import annotations

import http.server
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from blog.build import ROOT
from blog.comments import free_port
from tests.browser import expect

pytestmark = pytest.mark.slow  # invoke serve and its helpers in subprocesses

INVOKE = Path(sys.executable).parent / "invoke"
ISSO = importlib.util.find_spec("isso") is not None


def children(pid: int) -> list[int]:
    """Every living descendant of `pid`, read from /proc (no psutil here)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z":
            parents[int(stat.parent.name)] = int(fields[1])
    found, todo = [], [pid]
    while todo:
        parent = todo.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent]
        found += kids
        todo += kids
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def port_free(port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Serve:
    """A real `invoke serve` in its own process group (so the test can always clean up)."""

    def __init__(self, tmp_path: Path, endpoint_port: int | None = None, isso_port=None):
        self.port = free_port()
        self.endpoint_port = endpoint_port or free_port()
        self.isso_port = isso_port or free_port()
        self.log = tmp_path / "serve.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("NEWSLETTER_")}
        env.update(
            NEWSLETTER_DATABASE=str(tmp_path / "db.sqlite3"),
            NEWSLETTER_OUTBOX=str(tmp_path / "outbox"),
            PYTHONUNBUFFERED="1",
        )
        ports = {"port": self.port, "endpoint-port": self.endpoint_port}
        ports["isso-port"] = self.isso_port
        command = [str(INVOKE), "serve"]
        for option, port in ports.items():
            command += [f"--{option}", str(port)]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.seen: set[int] = set()

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_until_serving(self, endpoint: bool = True, isso: bool = ISSO) -> None:
        def up():
            assert self.process.poll() is None, f"invoke serve exited:\n{self.output}"
            return (
                answers(f"http://127.0.0.1:{self.port}/")
                and (not endpoint or answers(f"http://127.0.0.1:{self.endpoint_port}/healthz"))
                and (not isso or answers(f"http://127.0.0.1:{self.isso_port}/info"))
            )

        wait_for(up, 12, f"invoke serve to answer:\n{self.output}")
        self.seen.update(children(self.process.pid))

    def cleanup(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in self.seen:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(5)


@pytest.fixture
def serve(tmp_path, project_folders):
    """`serve(**ports)` starts `invoke serve` in the project: its output/, cache/ and
    var/serve.json are the project's, so such tests take turns (`project_folders`)."""
    started = []

    def start(**ports):
        started.append(Serve(tmp_path, **ports))
        return started[-1]

    yield start
    for server in started:
        server.cleanup()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_a_signal_to_invoke_serve_stops_every_helper_and_frees_the_ports(serve, signum):
    server = serve()
    server.wait_until_serving()
    helpers = children(server.process.pid)
    assert len(helpers) == 1 + ISSO, server.output  # the endpoint, and Isso when installed

    os.kill(server.process.pid, signum)

    server.process.wait(8)
    wait_for(lambda: not any(alive(pid) for pid in helpers), 3, "the helpers to stop")
    ports = [server.port, server.endpoint_port] + ([server.isso_port] if ISSO else [])
    wait_for(lambda: all(port_free(port) for port in ports), 3, f"ports {ports} to be free")
    assert server.process.returncode == 128 + signum


class HealthyHandler(http.server.BaseHTTPRequestHandler):
    """Another program on the port, answering 200 to everything (/healthz and /info too)."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def held_port():
    """A port held by a program that answers 200 on every path."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HealthyHandler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def test_an_endpoint_port_answered_by_another_program_is_refused(serve, held_port):
    server = serve(endpoint_port=held_port)
    server.wait_until_serving(endpoint=False)
    output = server.output
    assert (
        f"Newsletter endpoint off: port {held_port} is in use by another program; stop it or run "
        "`invoke serve --endpoint-port N`"
    ) in output
    assert "endpoint at" not in output
    assert len(children(server.process.pid)) == ISSO  # no endpoint process left behind


def test_an_endpoint_port_held_by_a_silent_socket_is_refused(serve):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        server = serve(endpoint_port=port)
        server.wait_until_serving(endpoint=False)
        output = server.output
    assert f"Newsletter endpoint off: port {port} is in use by another program" in output
    assert "endpoint at" not in output


@pytest.mark.skipif(not ISSO, reason="Isso is not installed")
def test_an_isso_port_answered_by_another_program_is_refused(serve, held_port):
    server = serve(isso_port=held_port)
    server.wait_until_serving(isso=False)
    output = server.output
    assert (
        f"Comments are off: port {held_port} is in use by another program; stop it or run "
        "`invoke serve --isso-port N`"
    ) in output
    assert "Isso at" not in output
    assert len(children(server.process.pid)) == 1  # the endpoint only


def test_a_sigterm_while_the_endpoint_starts_stops_it_too(serve):
    server = serve()
    wait_for(lambda: children(server.process.pid), 10, "the endpoint process to start")
    helpers = children(server.process.pid)
    os.kill(server.process.pid, signal.SIGTERM)
    assert "endpoint at" not in server.output  # the signal came during the wait for /healthz

    server.process.wait(8)
    wait_for(lambda: not any(alive(pid) for pid in helpers), 3, "the endpoint to stop")
    assert port_free(server.endpoint_port)


def test_a_helper_that_ignores_sigterm_is_killed_after_the_timeout():
    from blog.serve import running_helpers

    stubborn = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print(1, flush=True); time.sleep(60)"
    )
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt), running_helpers(timeout=0.5) as helpers:
        helpers.append(subprocess.Popen([sys.executable, "-c", stubborn], stdout=subprocess.PIPE))
        helpers[0].stdout.readline()  # its SIGTERM handler is in place
        raise KeyboardInterrupt
    assert helpers[0].returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5
    helpers[0].stdout.close()


# Serving a site built from a content folder of the test's own -----------------------------------
SERVE_SCRIPT = """
import sys
from blog.build import build
from blog.serve import serve
content, output, cache, port = sys.argv[1:]
site = f"http://127.0.0.1:{port}"
serve(lambda: build(cache=cache, PATH=content, OUTPUT_PATH=output, SITEURL=site, ISSO_URL=""),
      output=output, port=int(port), watched=[content])
"""


@pytest.fixture
def own_site(tmp_path, content_dir):
    """blog.serve.serve() in a process of its own, over a one-article content folder in tmp_path,
    rebuilt the way `invoke serve` rebuilds (the content cache); stopped after the test."""
    from tests.conftest import write_article

    write_article(content_dir, "first", "A first article", "2026-01-05 10:00")
    port, log = free_port(), tmp_path / "own-serve.log"
    script = [sys.executable, "-c", SERVE_SCRIPT, str(content_dir), str(tmp_path / "out"),
              str(tmp_path / "cache"), str(port)]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen(script, cwd=ROOT, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: answers(url + "/"), 20, f"the site to answer:\n{log.read_text()}")
        yield content_dir, url, log
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_a_missing_page_gets_the_themes_404_page_with_a_404_status(own_site):
    _, url, _ = own_site
    status, body = get(url + "/no-such-page/")
    assert status == 404
    assert "That page isn’t here" in body and f'href="{url}/archives/"' in body
    assert "404: Not Found" not in body
    assert get(url + "/")[0] == 200


def test_a_broken_article_while_serving_prints_one_line_and_the_last_good_site_stays(own_site):
    content, url, log = own_site
    (content / "articles" / "broken.md").write_text(
        "Title: Broken\nDate: 2026-01-06 10:00\nCategory: Rehab\nId: not-a-uuid\n\nText.\n",
        encoding="utf-8",
    )
    wait_for(lambda: "Build failed" in log.read_text(), 15, f"the failed build:\n{log.read_text()}")
    time.sleep(0.5)  # anything printed after the line
    printed = log.read_text()
    failed = [line for line in printed.splitlines() if "Build failed" in line]
    assert len(failed) == 1, printed
    assert failed[0].startswith("Build failed, still serving the last good site: "), printed
    assert "broken.md" in failed[0], printed  # the file, on that one line
    assert "Traceback" not in printed
    # and only that line: not Pelican's own "ERROR: Could not process articles/broken.md" too
    assert not [line for line in printed.splitlines() if "ERROR" in line], printed
    assert printed.count("broken.md") == 1, printed
    assert get(url + "/")[0] == 200
    assert "A first article" in get(url + "/")[1]


def test_a_file_our_line_cannot_explain_keeps_pelicans_error_above_it(own_site):
    content, url, log = own_site
    (content / "articles" / "bad.md").write_bytes(b"Title: Bad\n\nNot UTF-8: \xff\xfe\n")
    wait_for(lambda: "Build failed" in log.read_text(), 15, f"the failed build:\n{log.read_text()}")
    time.sleep(0.5)
    lines = log.read_text().splitlines()
    pelican = [n for n, line in enumerate(lines) if "Could not process articles/bad.md" in line]
    ours = [n for n, line in enumerate(lines) if "Build failed" in line]
    assert len(pelican) == 1 and len(ours) == 1 and pelican[0] < ours[0], lines
    assert "bad.md: could not be read (see the error above)" in "\n".join(lines[ours[0] :])
    assert get(url + "/")[0] == 200


def test_each_livereload_line_is_printed_once(own_site):
    content, url, log = own_site
    (content / "articles" / "first.md").touch()
    wait_for(lambda: "Running task" in log.read_text(), 15, f"a rebuild:\n{log.read_text()}")
    time.sleep(1)
    lines = log.read_text().splitlines()
    port = url.rsplit(":", 1)[1]
    for message in (f"Serving on http://127.0.0.1:{port}", "Start watching", "Running task"):
        assert sum(message in line for line in lines) == 1, (message, lines)


# `invoke build` and `invoke preview` beside `invoke serve` -------------------------------------
def run_invoke(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if key not in ("SITEURL", "ISSO_URL")}
    return subprocess.run([str(INVOKE), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)  # fmt: skip


ARTICLE = "2026/the-best-muscle-to-train-for-knee-pain/index.html"


def test_invoke_build_while_serving_builds_what_serve_serves(serve):
    server = serve()
    server.wait_until_serving()
    site = f"http://localhost:{server.port}"

    built = run_invoke("build")

    assert built.returncode == 0, built.stdout + built.stderr
    assert f"`invoke serve` is running at {site}" in built.stdout
    page = (ROOT / "output" / ARTICLE).read_text(encoding="utf-8")
    assert f'<link rel="stylesheet" href="{site}/theme/css/style.css">' in page
    assert f'action="http://127.0.0.1:{server.endpoint_port}/subscribe"' in page
    if ISSO:  # the comments stay open, on serve's Isso
        assert f'data-isso="http://127.0.0.1:{server.isso_port}"' in page
        assert "Comments are not open" not in page
    status, served = get(f"http://127.0.0.1:{server.port}/{ARTICLE}")
    assert status == 200 and f"{site}/theme/css/style.css" in served


@pytest.fixture
def preview_port(project_folders):  # the project's output-preview/ and output/
    port = free_port()
    started = []
    yield port, started
    for process in started:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(5)


def test_invoke_preview_serves_its_own_folder_and_leaves_output_alone(preview_port, tmp_path):
    port, started = preview_port
    log = tmp_path / "preview.log"
    env = {key: value for key, value in os.environ.items() if key not in ("SITEURL", "ISSO_URL")}
    with open(log, "wb") as out:
        started.append(subprocess.Popen(
            [str(INVOKE), "preview", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        ))  # fmt: skip
    url, site = f"http://127.0.0.1:{port}", f"http://localhost:{port}"
    wait_for(lambda: answers(url + "/"), 60, f"the preview to answer:\n{log.read_text()}")

    assert f"output-preview/ at {site}/" in log.read_text()
    status, page = get(f"{url}/{ARTICLE}")
    assert status == 200
    assert f'<link rel="stylesheet" href="{site}/theme/css/style.css">' in page  # not production's
    assert get(f"{url}/theme/css/style.css")[0] == 200
    assert "walkagain.example/newsletter" not in page  # the form does not post to production
    assert (ROOT / "output-preview" / ARTICLE).is_file()
    served = ROOT / "output" / ARTICLE
    assert not served.is_file() or site not in served.read_text(encoding="utf-8")
    status, missing = get(f"{url}/no-such-page/")
    assert status == 404 and "That page isn’t here" in missing


def test_a_github_dry_run_beside_serve_changes_no_ref_and_leaves_the_served_site(serve):
    server = serve()
    server.wait_until_serving()
    site = f"http://localhost:{server.port}"
    refs = ["git", "for-each-ref", "--format=%(refname) %(objectname)"]
    before = subprocess.run(refs, cwd=ROOT, capture_output=True, text=True, check=True).stdout

    published = run_invoke("publish", "--github", "--dry-run")

    assert published.returncode == 0, published.stdout + published.stderr
    assert "Dry run: nothing committed or pushed" in published.stdout
    assert "branch gh-pages" in published.stdout
    assert re.search(r"^  [+~=] index\.html$", published.stdout, re.MULTILINE)  # the files listed
    after = subprocess.run(refs, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert after == before  # no gh-pages branch, no commit
    page = (ROOT / "output" / ARTICLE).read_text(encoding="utf-8")  # serve's site, built back
    assert f'<link rel="stylesheet" href="{site}/theme/css/style.css">' in page


def test_the_form_works_on_the_served_site_at_127_0_0_1_and_at_localhost(serve, new_context):
    server = serve()
    server.wait_until_serving()
    time.sleep(3.5)  # livereload reloads the pages open 2 s after its start (its restart_delay)
    page = new_context().new_page()
    for host in ("127.0.0.1", "localhost"):  # the address serve prints, and the one it builds for
        page.goto(f"http://{host}:{server.port}/{ARTICLE}")
        form = page.locator("form.subscribe-form").first
        form.locator("input[type=email]").fill(f"reader@{host}.example")
        form.locator("button[type=submit]").click()
        expect(form).to_contain_text("Almost done", timeout=10_000)  # the endpoint's answer

        response = page.goto(f"http://{host}:{server.port}/no-such-page/")
        assert response.status == 404 and page.title().startswith("Page not found")
