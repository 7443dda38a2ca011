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
