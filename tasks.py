"""Tasks for the blog: `invoke --list`. Each one is a thin front door into the `blog` package."""

import os
import shutil
import sys
from pathlib import Path

from invoke import Collection, Exit, task

ROOT = Path(__file__).resolve().parent
OUTPUT = ROOT / "output"
PY = sys.executable


def _build(config="pelicanconf.py", **overrides):
    from blog.build import BuildError, build

    try:
        build(config, **overrides)
    except BuildError as error:
        raise Exit(f"Build failed:\n{error}", code=1) from None


@task
def clean(c):
    """Remove the generated site (output/)."""
    shutil.rmtree(OUTPUT, ignore_errors=True)
    print(f"Removed {OUTPUT}")


@task
def build(c):
    """Build the site into output/ with the development settings."""
    _build()


@task(pre=[clean])
def rebuild(c):
    """Remove output/ and build the site from scratch."""
    _build()


@task(help={"port": "port for the site (default 8000)"})
def serve(c, port=8000):
    """Build, then serve output/ on 127.0.0.1 with live reload (and Isso comments if installed)."""
    from blog import comments
    from blog.serve import serve as run_server

    helpers = []
    isso = comments.start_local_isso(site_url=f"http://localhost:{port}")
    if isso:
        helpers.append(isso.process)
        os.environ["ISSO_URL"] = isso.url
        print(f"Comments: Isso at {isso.url}")
    run_server(lambda: _build(SITEURL=f"http://localhost:{port}"), port=int(port), helpers=helpers)


@task
def preview(c):
    """Build output/ with the production settings (publishconf.py) to check before publishing."""
    _build("publishconf.py")


@task(
    help={
        "target": "rsync destination user@host:/path (default: $PUBLISH_TARGET)",
        "github": "publish to GitHub Pages (gh-pages branch) with ghp-import instead of rsync",
        "dry_run": "show what would be uploaded, upload nothing",
    }
)
def publish(c, target="", github=False, dry_run=False):
    """Build with publishconf.py and upload output/ (rsync over ssh, or GitHub Pages)."""
    from blog import publish as pub

    _build("publishconf.py")
    try:
        folder = pub.checked_output(OUTPUT)
        if github:
            command = pub.ghp_command(folder, push=not dry_run)
        else:
            command = pub.rsync_command(
                folder, target or os.environ.get("PUBLISH_TARGET", ""), dry_run=dry_run
            )
    except pub.PublishError as error:
        raise Exit(f"Not published: {error}", code=1) from None
    print(" ".join(command))
    try:
        pub.run(command)
    except pub.PublishError as error:
        raise Exit(f"Not published: {error}", code=1) from None


@task
def feed(c):
    """Rebuild only the RSS and Atom feeds in output/feeds/."""
    from blog.build import BuildError, build_feeds

    try:
        for path in build_feeds():
            print(f"wrote output/{path}")
    except BuildError as error:
        raise Exit(f"Feeds not written:\n{error}", code=1) from None


@task(help={"title": "the article's title"})
def new(c, title):
    """Start a new draft article in content/articles/ with a fresh Id and today's date."""
    from blog.content import new_article

    path = new_article(ROOT / "content" / "articles", title)
    print(f"Created {path.relative_to(ROOT)} (Status: draft); remove that line to publish it.")


@task(help={"args": "extra arguments for pytest, e.g. '-k feeds -x'"})
def test(c, args=""):
    """Run the test suite (pytest)."""
    c.run(f"{PY} -m pytest {args}", pty=False)


@task
def lint(c):
    """Check code style and formatting with ruff."""
    c.run(f"{PY} -m ruff check .")
    c.run(f"{PY} -m ruff format --check .")


@task(help={"sizes": "article counts to build, comma-separated"})
def bench(c, sizes="200,2000"):
    """Run the benchmarks in bench/ and print the results (build time, page weight)."""
    c.run(f"{PY} bench/build_speed.py --sizes {sizes}")
    c.run(f"{PY} bench/page_weight.py")


ns = Collection(clean, build, rebuild, serve, preview, publish, feed, new, test, lint, bench)
