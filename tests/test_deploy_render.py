"""deploy/render.py fills the deployment files' placeholders (`${NAME}`) and nothing else, refuses
a missing or unused value, and docs/deployment.md shows the files of deploy/ by linking them, with
no second copy in prose. The stack test (tests/test_deploy.py) runs what it renders."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
DOC = ROOT / "docs" / "deployment.md"


def load_render():
    spec = importlib.util.spec_from_file_location("deploy_render", DEPLOY / "render.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = load_render()


@pytest.fixture
def values():
    return render.read_values(DEPLOY / "walkagain.values")


def test_the_example_values_render_every_file_and_only_the_placeholders(tmp_path, values):
    written = render.render_all(values, tmp_path)
    names = {path.name for path in written}
    assert names == {
        "nginx-site.conf", "walkagain-newsletter.service", "walkagain-announce.service",
        "walkagain-announce.timer", "walkagain-bounces.service", "walkagain-bounces.timer",
        "walkagain-reminders.service", "walkagain-reminders.timer", "walkagain.cron",
    }  # fmt: skip
    texts = {path.name: path.read_text() for path in written}
    assert not any("${" in text for text in texts.values())
    site = texts["nginx-site.conf"]
    assert "server_name walkagain.example;" in site and "root /srv/walkagain/output;" in site
    assert "proxy_pass http://127.0.0.1:5000/;" in site
    for own in ("$uri", "$host", "$remote_addr", "$scheme", "$server_name$request_uri"):
        assert own in site  # nginx's variables pass through
    service = texts["walkagain-newsletter.service"]
    assert "ExecStart=/srv/walkagain/.venv/bin/gunicorn --bind 127.0.0.1:5000 " in service
    assert "UMask=0077" in service and "$MAINPID" in service
    for unit in ("walkagain-announce.service", "walkagain-bounces.service",
                 "walkagain-reminders.service"):  # fmt: skip
        assert "UMask=0077" in texts[unit] and "EnvironmentFile=/etc/walkagain/" in texts[unit]
    assert "ExecStart=/srv/walkagain/.venv/bin/invoke reminders\n" in texts[
        "walkagain-reminders.service"]  # fmt: skip
    assert "OnCalendar=*:0/5\n" in texts["walkagain-reminders.timer"]  # every 5 minutes
    assert ".venv/bin/invoke reminders >> var/reminders.log" in texts["walkagain.cron"]


def test_only_upper_case_names_in_braces_are_placeholders():
    text = "a ${NAME} b $NAME c ${name} d $$ e ${Name} f ${NAME_2}"
    assert render.placeholders(text) == {"NAME", "NAME_2"}
    assert render.render(text, {"NAME": "x", "NAME_2": "y"}) == (
        "a x b $NAME c ${name} d $$ e ${Name} f y"
    )


def test_a_missing_value_is_an_error_naming_the_file_and_nothing_is_written(tmp_path, values):
    del values["ENDPOINT_PORT"]
    with pytest.raises(render.RenderError, match="ENDPOINT_PORT"):
        render.render_all(values, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_value_no_file_uses_is_a_misspelling(tmp_path, values):
    values["SERVER_NAMES"] = "walkagain.example"
    with pytest.raises(render.RenderError, match="SERVER_NAMES"):
        render.render_all(values, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_value_is_one_line(tmp_path, values):
    values["SERVER_NAME"] = "walkagain.example;\n    location / { }"
    with pytest.raises(render.RenderError, match="one line"):
        render.render_all(values, tmp_path / "out")


def test_the_command_line_takes_overrides_and_says_what_is_wrong(tmp_path, capsys):
    out = tmp_path / "out"
    status = render.main([str(DEPLOY / "walkagain.values"), str(out), "ENDPOINT_PORT=5050"])
    assert status == 0
    assert "proxy_pass http://127.0.0.1:5050/;" in (out / "nginx-site.conf").read_text()
    bad = tmp_path / "bad.values"
    bad.write_text("SERVER_NAME walkagain.example\n")
    assert render.main([str(bad), str(tmp_path / "other")]) == 1
    assert "bad.values:1: expected NAME=value" in capsys.readouterr().err


def test_the_docs_link_every_deployment_file_and_copy_none():
    doc = DOC.read_text(encoding="utf-8")
    for path in [*render.templates(), DEPLOY / "render.py", DEPLOY / "walkagain.values"]:
        assert f"](../deploy/{path.name})" in doc, f"docs/deployment.md does not link {path.name}"
    # No second copy: the files' contents are not repeated in the prose.
    blocks = re.findall(r"```.*?```", doc, flags=re.S)
    for marker in ("proxy_pass", "[Service]", "ExecStart=", "[Timer]", "add_header",
                   "invoke announce --check-live >>"):  # fmt: skip
        assert not any(marker in block for block in blocks), marker
