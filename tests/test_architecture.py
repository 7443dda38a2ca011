"""The import contracts (pyproject.toml, import-linter): the newsletter's rooms point one way, the
blog never imports its plugins (Pelican loads them), and a back-import anywhere fails them, so a
future circle fails CI."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(project / "pyproject.toml"), "--no-cache"],
        cwd=project, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def copy_of_the_project(tmp_path: Path) -> Path:
    for name in ("newsletter", "blog", "plugins"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def test_the_contracts_are_kept():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    contracts = (ROOT / "pyproject.toml").read_text().count("[[tool.importlinter.contracts]]")
    assert f"{contracts} kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, back_import, contract",
    [
        ("mail/outbox.py", "from newsletter.subscriptions import tokens", "knows no feature"),
        ("subscriptions/sender.py", "from newsletter.announcements import ledger", "one way"),
        ("outgoing/ledger.py", "from newsletter.subscriptions import subscribers", "no feature"),
        ("database.py", "import newsletter.mail", "one way"),
        ("feed_contract.py", "import newsletter.settings", "blog never imports"),
    ],
)
def test_a_deliberate_back_import_breaks_a_contract(tmp_path, module, back_import, contract):
    project = copy_of_the_project(tmp_path)
    package = "blog" if module == "feed_contract.py" else "newsletter"
    target = project / package / module
    target.write_text(target.read_text() + f"\n{back_import}  # the wrong way\n")
    result = lint_imports(project)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout


@pytest.mark.parametrize(
    "module, back_import, contract",
    [
        ("blog/build.py", "import plugins.feeds", "plugins sit above the blog"),
        ("blog/pelican_seam.py", "from plugins.lean import Members", "plugins sit above the blog"),
        ("plugins/lean/__init__.py", "import blog.build", "never its steps"),
        ("plugins/feeds/__init__.py", "import newsletter.settings", "blog never imports"),
    ],
)
def test_the_blog_importing_a_plugin_breaks_a_contract(tmp_path, module, back_import, contract):
    project = copy_of_the_project(tmp_path)
    target = project / module
    target.write_text(target.read_text() + f"\n{back_import}  # the wrong way\n")
    result = lint_imports(project)
    assert result.returncode != 0
    broken = [line for line in result.stdout.splitlines() if " BROKEN" in line]
    assert any(contract in line for line in broken), result.stdout
