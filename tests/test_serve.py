"""`invoke serve`, run for real: signals stop its helpers, and a port held by another program is
refused with a message rather than announced as the endpoint (or Isso)."""

from __future__ import annotations

import http.server
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from blog.build import ROOT
from blog.comments import free_port

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
def serve(tmp_path):
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
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
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
