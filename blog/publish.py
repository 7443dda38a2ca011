"""Publish output/ to a static host: rsync over ssh, or GitHub Pages with ghp-import.

Contract: `checked_output()` returns the resolved output folder only if it is the project's own
`output/` folder, holds a built site (index.html) and contains no symlink that points outside it;
otherwise `PublishError` says why and nothing is uploaded. `rsync_command()` and `ghp_command()`
build the command lines that upload exactly that folder's contents.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from blog.build import ROOT


class PublishError(Exception):
    """Refusing to publish; the message says why."""


def checked_output(output: str | os.PathLike, root: Path = ROOT) -> Path:
    expected = (root / "output").resolve()
    folder = Path(output)
    folder = (folder if folder.is_absolute() else root / folder).resolve()
    if folder != expected:
        raise PublishError(f"refusing to publish {folder}: only {expected} is ever uploaded")
    if not (folder / "index.html").is_file():
        raise PublishError(f"{folder} holds no built site (no index.html); run `invoke preview`")
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                target = path.resolve()
                if target != folder and folder not in target.parents:
                    raise PublishError(
                        f"refusing to publish: {path} links to {target}, outside {folder}"
                    )
    return folder


def rsync_command(folder: Path, target: str, *, dry_run: bool = False) -> list[str]:
    if not target or ":" not in target:
        raise PublishError(
            "set PUBLISH_TARGET to an rsync destination like user@host:/var/www/blog"
        )
    command = ["rsync", "-rlptvzc", "--delete", "--safe-links", "-e", "ssh"]
    if dry_run:
        command.append("--dry-run")
    return [*command, f"{folder}/", target]


def ghp_command(folder: Path, branch: str = "gh-pages", *, push: bool = True) -> list[str]:
    command = [sys.executable, "-m", "ghp_import", "--no-jekyll", "--force", "--branch", branch]
    if push:
        command.append("--push")
    return [*command, str(folder)]


def run(command: list[str], cwd: Path = ROOT) -> None:
    try:
        subprocess.run(command, check=True, cwd=cwd)
    except FileNotFoundError:
        raise PublishError(f"{command[0]} is not installed on this machine") from None
    except subprocess.CalledProcessError as error:
        raise PublishError(f"{command[0]} failed with exit code {error.returncode}") from None
