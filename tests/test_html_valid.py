"""Every generated HTML page passes the Nu HTML Checker (vnu-jar from npm) with no errors."""

import json
import shutil
import subprocess

import pytest

from blog.build import ROOT

VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"


def test_every_page_is_valid_html(site):
    if not VNU.is_file() or not shutil.which("java"):
        pytest.fail("the Nu HTML Checker is not installed: run `bash bin/setup --test`")
    pages = sorted(site.output.rglob("*.html"))
    assert len(pages) >= 12
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json", "--exit-zero-always",
         *map(str, pages)],
        capture_output=True, text=True, timeout=300,
    )
    report = json.loads(result.stderr or result.stdout)
    errors = [
        f"{m.get('url', '').split('/site')[-1]}:{m.get('lastLine')}: {m['message']}"
        for m in report["messages"]
        if m["type"] == "error"
    ]
    assert errors == [], "\n".join(errors)
