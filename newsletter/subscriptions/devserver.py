"""The endpoint for `invoke serve`: the Flask app on 127.0.0.1:5000, next to the blog.

Contract: `start(site_url, port)` checks the NEWSLETTER_* settings (the site's origin defaults to
`site_url`), runs this module's `main(port)` in a subprocess (the app under werkzeug's server:
no development-server banner, one log line per request) and returns it once /healthz answers
while that subprocess is alive; it returns None, after printing why, if the settings are wrong,
the port is held by another program (checked before starting, so another program's answer is
never taken for the endpoint's), or the endpoint does not come up (the blog is served anyway;
its form then shows a network error). The subprocess is stopped on every way out but success,
a Ctrl-C or SIGTERM during the wait included.
In development, with a loopback site (`http://localhost:PORT`), `LoopbackOrigins` lets the form
post from any loopback origin (`http://localhost:N`, `http://127.0.0.1:N`: the served site at
either address, `invoke preview`) by presenting it to the app as the site's origin; the app's own
CORS (one origin, the site's) is unchanged, and production (gunicorn on `app:create_app()`)
never runs this module.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlsplit

from blog.ports import port_in_use
from newsletter.settings import ROOT, ConfigError, Settings

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "[::1]")


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
    command = [sys.executable, "-c", f"from {__name__} import main; main({int(port)})"]
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
                f"to {settings.mail.outbox if settings.mail.transport == 'outbox' else 'SMTP'}"
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


def _loopback(origin: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme == "http" and parts.netloc.rsplit(":", 1)[0] in LOOPBACK_HOSTS


class LoopbackOrigins:
    """WSGI middleware for development: a request from a loopback origin other than the site's is
    shown to the app as coming from the site's origin, and the answer's
    Access-Control-Allow-Origin names the origin that really asked (a browser needs its own)."""

    def __init__(self, app, site_origin: str):
        self.app, self.site_origin = app, site_origin

    def __call__(self, environ, start_response):
        origin = environ.get("HTTP_ORIGIN", "")
        if not origin or origin.lower() == self.site_origin or not _loopback(origin.lower()):
            return self.app(environ, start_response)
        environ["HTTP_ORIGIN"] = self.site_origin

        def start(status, headers, exc_info=None):
            headers = [
                (name, origin if name.lower() == "access-control-allow-origin" else value)
                for name, value in headers
            ]
            return start_response(status, headers, exc_info)

        return self.app(environ, start)


def create_dev_app(settings: Settings):
    from newsletter.subscriptions.app import create_app

    app = create_app(settings)
    if settings.core.env == "development" and _loopback(settings.core.site_origin):
        app.wsgi_app = LoopbackOrigins(app.wsgi_app, settings.core.site_origin)
    return app


def main(port: int) -> None:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", port, create_dev_app(Settings.from_env()), threaded=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
