"""`invoke serve` runs the endpoint next to the blog: the devserver helper, started for real."""

import json
import threading
import urllib.error
import urllib.request

import pytest

from blog.comments import free_port
from newsletter.subscriptions import devserver

pytestmark = pytest.mark.slow  # real servers


def test_endpoint_starts_answers_and_stops(tmp_path, monkeypatch):
    monkeypatch.setenv("NEWSLETTER_DATABASE", str(tmp_path / "db.sqlite3"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(tmp_path / "outbox"))
    port = free_port()
    process = devserver.start(site_url="http://localhost:8123", port=port)
    assert process is not None
    try:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/subscribe",
            data=b"email=reader%40example.com",
            headers={"Accept": "application/json", "Origin": "http://localhost:8123"},
        )
        with urllib.request.urlopen(request, timeout=5) as answer:
            assert json.load(answer)["ok"] is True
            assert answer.headers["Access-Control-Allow-Origin"] == "http://localhost:8123"
    finally:
        process.terminate()
        process.wait(10)
    assert (tmp_path / "db.sqlite3").is_file()


def test_wrong_settings_leave_the_endpoint_off(monkeypatch, capsys):
    monkeypatch.setenv("NEWSLETTER_SMTP_PORT", "many")
    assert devserver.start(site_url="http://localhost:8123", port=free_port()) is None
    assert "Newsletter endpoint off: NEWSLETTER_SMTP_PORT='many'" in capsys.readouterr().out


def subscribe(port: int, origin: str, method: str = "POST"):
    """The form's request from a page at `origin`: (status, Access-Control-Allow-Origin)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/subscribe",
        data=b"email=reader%40example.com" if method == "POST" else None,
        headers={"Accept": "application/json", "Origin": origin,
                 "Access-Control-Request-Method": "POST"},
        method=method,
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.headers.get("Access-Control-Allow-Origin")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Access-Control-Allow-Origin")


@pytest.fixture
def endpoint(tmp_path, monkeypatch):
    """The endpoint as `invoke serve` starts it, for a site at http://localhost:8123."""
    monkeypatch.setenv("NEWSLETTER_DATABASE", str(tmp_path / "db.sqlite3"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(tmp_path / "outbox"))
    monkeypatch.setenv("NEWSLETTER_RATE_LIMIT", "1000/hour")
    port = free_port()
    process = devserver.start(site_url="http://localhost:8123", port=port)
    assert process is not None
    yield port
    process.terminate()
    process.wait(10)


def test_the_form_is_accepted_from_the_site_at_localhost_and_127_0_0_1_only_in_development(
    endpoint, tmp_path
):
    from werkzeug.serving import make_server

    from newsletter.subscriptions.app import create_app
    from tests.conftest import newsletter_settings

    for origin in ("http://localhost:8123", "http://127.0.0.1:8123"):
        assert subscribe(endpoint, origin, "OPTIONS")[1] == origin  # the preflight
        assert subscribe(endpoint, origin) == (200, origin)
    for origin in ("https://evil.example", "http://localhost.evil.example:8123"):
        assert subscribe(endpoint, origin)[1] is None

    # the app gunicorn serves (production) keeps its one origin, for the same site
    app = create_app(newsletter_settings(tmp_path, site_url="http://localhost:8123"))
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        port = server.server_address[1]
        assert subscribe(port, "http://localhost:8123")[1] == "http://localhost:8123"
        assert subscribe(port, "http://127.0.0.1:8123")[1] is None
    finally:
        server.shutdown()
        server.server_close()
        app.extensions["newsletter"].close()


def test_the_endpoint_prints_no_development_server_banner(tmp_path, monkeypatch, capfd):
    monkeypatch.setenv("NEWSLETTER_DATABASE", str(tmp_path / "db.sqlite3"))
    monkeypatch.setenv("NEWSLETTER_OUTBOX", str(tmp_path / "outbox"))
    port = free_port()
    process = devserver.start(site_url="http://localhost:8123", port=port)
    assert process is not None
    try:
        subscribe(port, "http://localhost:8123")
    finally:
        process.terminate()
        process.wait(10)
    printed = "".join(capfd.readouterr())
    assert f"Newsletter: endpoint at http://127.0.0.1:{port}/subscribe" in printed
    assert "development server" not in printed and "Serving Flask app" not in printed
    assert "Running on" not in printed
    assert '"POST /subscribe HTTP/1.1" 200' in printed  # one line per request stays
