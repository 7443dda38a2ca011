"""The endpoint for `invoke serve`: the Flask app on 127.0.0.1:5000, next to the blog.

Contract: `start(site_url, port)` checks the NEWSLETTER_* settings (the site's origin defaults to
`site_url`), runs `flask --app newsletter.subscriptions.app:create_app run` as a subprocess
and returns it once /healthz answers while that subprocess is alive; it returns None, after
printing why, if the settings are wrong, the port is held by another program (checked before
starting, so another program's answer is never taken for the endpoint's), or the endpoint does
not come up (the blog is served anyway; its form then shows a network error). The subprocess
is stopped on every way out but success, a Ctrl-C or SIGTERM during the wait included.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

from newsletter.settings import ROOT, ConfigError, Settings

APP = "newsletter.subscriptions.app:create_app"


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if another socket holds host:port (a listener, or a bound socket), as a bind shows."""
    with socket.socket() as sock:
        if os.name != "nt":  # a socket left in TIME_WAIT does not count; a listener still does
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def start(site_url: str, port: int = 5000, timeout: float = 15.0) -> subprocess.Popen | None:
    env = dict(os.environ)
    env.setdefault("NEWSLETTER_SITE_URL", site_url)
    env.setdefault("NEWSLETTER_BASE_URL", f"http://127.0.0.1:{port}")
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        print(f"Newsletter endpoint off: {error}")
        return None
    refused = (
        f"Newsletter endpoint off: port {port} is in use by another program; "
        "stop it or run `invoke serve --endpoint-port N`"
    )
    if port_in_use(port):
        print(refused)
        return None
    command = [sys.executable, "-m", "flask", "--app", APP, "run",
               "--host", "127.0.0.1", "--port", str(port), "--no-reload"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                print(f"Newsletter endpoint off: it exited at start (see above; port {port})")
                return None
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                    pass
            except OSError:
                time.sleep(0.2)
                continue
            if process.poll() is not None:  # the answer came from whatever took the port
                print(refused)
                return None
            print(
                f"Newsletter: endpoint at http://127.0.0.1:{port}/subscribe, emails written "
                f"to {settings.outbox if settings.transport == 'outbox' else 'SMTP'}"
            )
            return process
        print(f"Newsletter endpoint off: no answer on port {port} within {timeout:g} s")
    except BaseException:
        _stop(process)
        raise
    _stop(process)
    return None


def _stop(process: subprocess.Popen, timeout: float = 5.0) -> None:
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
