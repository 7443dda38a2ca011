#!/usr/bin/env python3
"""Render the deployment files in deploy/ for one machine (docs/deployment.md).

    python3 deploy/render.py VALUES OUT_DIR [NAME=VALUE ...]
    python3 deploy/render.py deploy/walkagain.values /tmp/walkagain-deploy

Every file in deploy/ but this script and the `*.values` files is a template. In a template,
`${NAME}` (upper-case letters, digits and `_`, in braces) is a placeholder; nothing else is, so
nginx's `$host` and systemd's `$MAINPID` pass through unchanged. The values come from VALUES
(`NAME=value` lines, `#` comments; the rest of the line after `=` is the value, no quoting),
then from `NAME=value` arguments, which win. A placeholder without a value, a value no template
uses (a misspelt name) or a value with a line break is an error, and nothing is written.
Each template is written to OUT_DIR under its own name. Only the standard library: this runs
with the system's python3, before any virtualenv exists. The tests render the same files
(tests/test_deploy.py, tests/test_deploy_render.py).
"""

from __future__ import annotations

import re
import string
import sys
from pathlib import Path

DEPLOY = Path(__file__).resolve().parent
NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")


class RenderError(ValueError):
    """A placeholder without a value, a value nothing uses, or a malformed value or line."""


class Placeholders(string.Template):
    # Only ${UPPER_CASE}, case-sensitive: `$name`, `${name}` and `$$` are left alone (nginx and
    # systemd use them).
    flags = 0  # string.Template's default is re.IGNORECASE
    pattern = r"""
        \$(?:
          (?P<escaped>(?!))                 |
          (?P<named>(?!))                   |
          \{(?P<braced>[A-Z][A-Z0-9_]*)\}   |
          (?P<invalid>(?!))
        )
    """


def templates(folder: Path = DEPLOY) -> list[Path]:
    """The templates in `folder`, by name."""
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_file()
        and path.name != Path(__file__).name
        and path.suffix not in (".values", ".pyc")
        and not path.name.startswith(".")
    )


def placeholders(text: str) -> set[str]:
    return {match["braced"] for match in Placeholders.pattern.finditer(text) if match["braced"]}


def read_values(path: Path) -> dict[str, str]:
    """`NAME=value` lines; blank lines and `#` comments are skipped."""
    values = {}
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not NAME.match(name.strip()):
            raise RenderError(f"{path}:{number}: expected NAME=value, got {line!r}")
        values[name.strip()] = value.strip()
    return values


def render(text: str, values: dict[str, str]) -> str:
    missing = sorted(placeholders(text) - values.keys())
    if missing:
        raise RenderError("no value for " + ", ".join(missing))
    return Placeholders(text).substitute(values)


def render_all(values: dict[str, str], out_dir: Path, folder: Path = DEPLOY) -> list[Path]:
    """Render every template of `folder` into `out_dir`; returns the files written."""
    for name, value in values.items():
        if not NAME.match(name):
            raise RenderError(f"not a placeholder name: {name!r}")
        if "\n" in value or "\r" in value:
            raise RenderError(f"{name}: a value must be one line")
    sources = templates(folder)
    used = set().union(*(placeholders(p.read_text(encoding="utf-8")) for p in sources))
    unused = sorted(values.keys() - used)
    if unused:
        raise RenderError("no template uses " + ", ".join(unused) + " (misspelt?)")
    rendered = {}
    for path in sources:
        try:
            rendered[path.name] = render(path.read_text(encoding="utf-8"), values)
        except RenderError as problem:
            raise RenderError(f"{path.name}: {problem}") from None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered.items():
        target = out_dir / name
        target.write_text(text, encoding="utf-8")
        written.append(target)
    return written


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] in ("-h", "--help"):
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    values_file, out_dir, *overrides = argv
    try:
        values = read_values(Path(values_file))
        for item in overrides:
            name, sep, value = item.partition("=")
            if not sep:
                raise RenderError(f"expected NAME=value, got {item!r}")
            values[name] = value
        written = render_all(values, Path(out_dir))
    except (OSError, RenderError) as problem:
        print(f"render.py: {problem}", file=sys.stderr)
        return 1
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
