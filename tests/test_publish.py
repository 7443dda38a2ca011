"""Publishing uploads output/ and nothing else."""

import os
import subprocess

import pytest

from blog import publish


@pytest.fixture
def project(tmp_path):
    (tmp_path / "output").mkdir()
    (tmp_path / "output" / "index.html").write_text("<!doctype html><title>x</title>")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "newsletter.sqlite3").write_text("subscribers")
    return tmp_path


def test_only_the_projects_output_folder_is_published(project):
    assert publish.checked_output("output", root=project) == (project / "output").resolve()
    for other in (".", "var", "content", str(project.parent)):
        with pytest.raises(publish.PublishError, match="only .* is ever uploaded"):
            publish.checked_output(other, root=project)


def test_an_unbuilt_output_is_refused(project):
    (project / "output" / "index.html").unlink()
    with pytest.raises(publish.PublishError, match="no built site"):
        publish.checked_output("output", root=project)


def test_a_symlink_out_of_output_is_refused(project):
    os.symlink(project / "var" / "newsletter.sqlite3", project / "output" / "db.sqlite3")
    with pytest.raises(publish.PublishError, match="links to .*newsletter.sqlite3, outside"):
        publish.checked_output("output", root=project)


def test_rsync_uploads_the_contents_of_output_only(project):
    folder = publish.checked_output("output", root=project)
    command = publish.rsync_command(folder, "deploy@example.org:/var/www/blog")
    assert command[-2:] == [f"{folder}/", "deploy@example.org:/var/www/blog"]
    assert "--delete" in command and "--safe-links" in command
    with pytest.raises(publish.PublishError, match="PUBLISH_TARGET"):
        publish.rsync_command(folder, "")


def test_github_pages_branch_gets_exactly_the_output(project):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run([*git, "init", "-q"], cwd=project, check=True)
    subprocess.run([*git, "commit", "-q", "--allow-empty", "-m", "init"], cwd=project, check=True)
    folder = publish.checked_output("output", root=project)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }
    subprocess.run(publish.ghp_command(folder, push=False), cwd=project, check=True, env=env)
    files = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "gh-pages"],
        cwd=project,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    assert sorted(files) == [".nojekyll", "index.html"]


def git_state(repo) -> dict:
    """Everything a publish could change in a repository: refs, HEAD, index, objects, tree."""

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True,
                              text=True).stdout  # fmt: skip

    objects = sorted(str(path.relative_to(repo)) for path in (repo / ".git" / "objects").rglob("*"))
    return {
        "refs": git("for-each-ref", "--format=%(refname) %(objectname)"),
        "head": git("rev-parse", "HEAD"),
        "status": git("status", "--porcelain", "--ignored"),
        "index": (repo / ".git" / "index").read_bytes(),
        "objects": objects,
    }


def test_a_github_dry_run_shows_the_files_and_branch_and_changes_nothing(project):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.org"}  # fmt: skip
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "commit", "-q", "--allow-empty", "-m", "init"], cwd=project, env=env,
                   check=True)  # fmt: skip
    folder = publish.checked_output("output", root=project)
    (folder / "old.html").write_text("old")
    subprocess.run(publish.ghp_command(folder, push=False), cwd=project, check=True, env=env)
    (folder / "old.html").unlink()  # published before, gone now
    (folder / "index.html").write_text("<!doctype html><title>changed</title>")
    (folder / "2026" / "new").mkdir(parents=True)
    (folder / "2026" / "new" / "index.html").write_text("new")
    before = git_state(project)

    lines = publish.github_plan(folder, cwd=project)

    assert git_state(project) == before  # no branch, commit, object or push
    assert "Dry run: nothing committed or pushed" in lines[0]
    assert "branch gh-pages (now at " in lines[0] and "origin (none yet)" in lines[0]
    assert lines[1:-1] == [
        "  = .nojekyll",
        "  + 2026/new/index.html",
        "  ~ index.html",
        "  - old.html",
    ]
    assert lines[-1].startswith("1 new, 1 changed, 1 removed, 1 unchanged")


def test_a_first_github_dry_run_says_the_branch_is_new_and_creates_it_not(project):
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    subprocess.run(["git", "remote", "add", "origin", "git@example.org:me/blog.git"], cwd=project,
                   check=True)  # fmt: skip
    refs = subprocess.run(["git", "for-each-ref"], cwd=project, capture_output=True, text=True)

    lines = publish.github_plan(publish.checked_output("output", root=project), cwd=project)

    assert (
        "branch gh-pages (new)" in lines[0] and "origin (git@example.org:me/blog.git)" in lines[0]
    )
    assert lines[1:-1] == ["  + .nojekyll", "  + index.html"]
    after = subprocess.run(["git", "for-each-ref"], cwd=project, capture_output=True, text=True)
    assert after.stdout == refs.stdout == ""


def test_a_github_dry_run_outside_a_git_repository_is_refused(project):
    folder = publish.checked_output("output", root=project)
    with pytest.raises(publish.PublishError, match="not a git repository"):
        publish.github_plan(folder, cwd=project)
