"""The endpoint for `invoke serve`: the Flask app on 127.0.0.1:5000, next to the blog.

Contract: `start(site_url, port)` checks the NEWSLETTER_* settings (the site's origin defaults to
`site_url`), runs `flask --app newsletter.subscriptions.app:create_app run` as a subprocess
and returns it once /healthz answers; it returns None, after printing why, if the settings are
wrong or the endpoint does not come up (the blog is served anyway; its form then shows a network
error).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request

from newsletter.settings import ROOT, ConfigError, Settings

APP = "newsletter.subscriptions.app:create_app"


def start(site_url: str, port: int = 5000, timeout: float = 15.0) -> subprocess.Popen | None:
    env = dict(os.environ)
    env.setdefault("NEWSLETTER_SITE_URL", site_url)
    env.setdefault("NEWSLETTER_BASE_URL", f"http://127.0.0.1:{port}")
    try:
        settings = Settings.from_env(env)
    except ConfigError as error:
        print(f"Newsletter endpoint off: {error}")
        return None
    command = [sys.executable, "-m", "flask", "--app", APP, "run",
               "--host", "127.0.0.1", "--port", str(port), "--no-reload"]  # fmt: skip
    process = subprocess.Popen(command, cwd=ROOT, env=env)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print(f"Newsletter endpoint off: it exited (is port {port} taken?)")
            return None
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                print(
                    f"Newsletter: endpoint at http://127.0.0.1:{port}/subscribe, emails written "
                    f"to {settings.outbox if settings.transport == 'outbox' else 'SMTP'}"
                )
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    print(f"Newsletter endpoint off: no answer on port {port} within {timeout:g} s")
    return None
