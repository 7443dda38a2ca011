"""`invoke serve` runs the endpoint next to the blog: the devserver helper, started for real."""

import json
import urllib.request

from blog.comments import free_port
from newsletter.subscriptions import devserver


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
