"""Publish output/ to a static host: rsync over ssh, or GitHub Pages with ghp-import.

Contract: `checked_output()` returns the resolved output folder only if it is the project's own
`output/` folder, holds a built site (index.html) and contains no symlink that points outside it;
otherwise `PublishError` says why and nothing is uploaded. `rsync_command()` and `ghp_command()`
build the command lines that upload exactly that folder's contents. `after_upload()` pings the
WebSub hub when `WEBSUB_HUB` is set (blog/websub.py), never in a dry run. `github_plan()` is the
GitHub dry run: it only reads the git repository (no commit, branch, object or push) and lists
the files `ghp_command()` would commit to which branch, against what that branch holds now.
"""

from __future__ import annotations

import hashlib
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


def after_upload(
    folder: Path, config: str = "publishconf.py", *, dry_run: bool = False, **overrides
) -> tuple[bool, list[str]]:
    """After the upload: tell the WebSub hub (WEBSUB_HUB) the feeds changed; in a dry run, only
    say so. Returns (all accepted, lines to print); a hub's refusal never undoes the publish."""
    from blog import websub
    from blog.build import load_settings

    return websub.notify(load_settings(config, **overrides), folder, dry_run=dry_run)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    except FileNotFoundError:
        raise PublishError("git is not installed on this machine") from None


def _blob_id(path: Path) -> str:
    """The id git gives a file's content (a blob): to compare with the branch without git."""
    data = os.readlink(path).encode() if path.is_symlink() else path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()  # noqa: S324 - git's id


def github_plan(
    folder: Path, branch: str = "gh-pages", remote: str = "origin", cwd: Path = ROOT
) -> list[str]:
    """What `invoke publish --github` would do, as lines to print; reads the repository only."""
    if _git(cwd, "rev-parse", "--git-dir").returncode != 0:
        raise PublishError(f"{cwd} is not a git repository: GitHub Pages publishes a branch of one")
    files = {".nojekyll": hashlib.sha1(b"blob 0\0").hexdigest()}  # noqa: S324 - --no-jekyll
    for dirpath, _, names in os.walk(folder):  # as ghp-import walks it
        for name in names:
            path = Path(dirpath, name)
            files[path.relative_to(folder).as_posix()] = _blob_id(path)
    before = {}
    exists = _git(cwd, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}")
    if exists.returncode == 0:
        listing = _git(cwd, "ls-tree", "-r", "-z", f"refs/heads/{branch}").stdout
        for entry in filter(None, listing.split("\0")):
            info, name = entry.split("\t", 1)
            before[name] = info.split()[2]
    url = _git(cwd, "remote", "get-url", remote)
    where = f"{remote} ({url.stdout.strip()})" if url.returncode == 0 else f"{remote} (none yet)"
    state = f"now at {exists.stdout.strip()[:12]}" if exists.returncode == 0 else "new"
    lines = [
        f"Dry run: nothing committed or pushed. `invoke publish --github` would replace branch "
        f"{branch} ({state}) with these {len(files)} files and push it to {where}:"
    ]
    changes = {"+": 0, "~": 0, "-": 0, "=": 0}
    for name in sorted(set(files) | set(before)):
        mark = (
            "-" if name not in files
            else "+" if name not in before
            else "=" if files[name] == before[name]
            else "~"
        )  # fmt: skip
        changes[mark] += 1
        lines.append(f"  {mark} {name}")
    lines.append(
        f"{changes['+']} new, {changes['~']} changed, {changes['-']} removed, "
        f"{changes['=']} unchanged (+ new, ~ changed, - removed, = unchanged)"
    )
    return lines
