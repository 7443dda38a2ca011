"""Tasks for the blog: `invoke --list`. Each one is a thin front door into the `blog` package."""

import os
import shutil
import sys
from pathlib import Path

from invoke import Collection, Exit, task

ROOT = Path(__file__).resolve().parent
OUTPUT = ROOT / "output"
CACHE = ROOT / "cache"  # `invoke serve`'s content cache (gitignored)
PY = sys.executable


def _build(config="pelicanconf.py", cache=None, **overrides):
    from blog.build import BuildError, build

    try:
        build(config, cache=cache, **overrides)
    except BuildError as error:
        raise Exit(f"Build failed:\n{error}", code=1) from None


@task
def clean(c):
    """Remove the generated site (output/) and the cache of `invoke serve` (cache/)."""
    for folder in (OUTPUT, CACHE):
        shutil.rmtree(folder, ignore_errors=True)
        print(f"Removed {folder}")


@task
def build(c):
    """Build the site into output/ (while `invoke serve` runs: with its settings)."""
    _build(**_served())


@task(pre=[clean])
def rebuild(c):
    """Remove output/ and build the site from scratch."""
    _build(**_served())


def _served():
    """The settings of the `invoke serve` running now (its address, comments, form), or none."""
    from blog.serve import serve_settings

    settings = serve_settings() or {}
    if settings:
        print(f"`invoke serve` is running at {settings['SITEURL']}: building with its settings")
    return settings


@task(
    help={
        "port": "port for the site (default 8000)",
        "endpoint_port": "port for the newsletter endpoint (default 5000)",
        "isso_port": "port for Isso, the comments, when installed (default 8080)",
    }
)
def serve(c, port=8000, endpoint_port=5000, isso_port=8080):
    """Build and serve output/ with live reload, the newsletter endpoint, and Isso if installed."""
    from blog.serve import running_helpers, serving, site_settings, start_comments
    from blog.serve import serve as run_server
    from newsletter.subscriptions import devserver

    site = f"http://localhost:{port}"
    with running_helpers() as helpers:  # stopped on the way out: Ctrl-C, SIGTERM, SIGHUP
        endpoint = devserver.start(site_url=site, port=int(endpoint_port))
        if endpoint:
            helpers.append(endpoint)
        isso = start_comments(site_url=site, port=int(isso_port))
        if isso:
            helpers.append(isso.process)
            os.environ["ISSO_URL"] = isso.url
            print(f"Comments: Isso at {isso.url}")
        # cache/: rebuilds read only the files that changed and render only the pages they touch;
        # the search index follows in the background (a save reaches the page as fast as before)
        settings = site_settings(int(port), int(endpoint_port))  # `invoke build` builds these too
        with serving(settings):
            run_server(lambda: _serve_build(settings), port=int(port), helpers=helpers)


def _serve_build(settings):
    from blog.build import build as build_site
    from blog.search import index_while_serving

    build_site(cache=CACHE, **settings)  # a BuildError: blog.serve says it in one line, serves on
    index_while_serving(OUTPUT)  # search: at once the first time, then in the background


@task(
    help={
        "port": "port to serve the preview on (default 8001)",
        "no_serve": "only build output-preview/, serve nothing",
    }
)
def preview(c, port=8001, no_serve=False):
    """Build the production settings into output-preview/ (never output/) and serve it there."""
    from blog.build import BuildError
    from blog.serve import PreviewError
    from blog.serve import preview as run_preview

    try:
        run_preview(int(port), serve=not no_serve)
    except BuildError as error:
        raise Exit(f"Build failed:\n{error}", code=1) from None
    except PreviewError as error:
        raise Exit(f"No preview: {error}", code=1) from None


@task(
    help={
        "target": "rsync destination user@host:/path (default: $PUBLISH_TARGET)",
        "github": "publish to GitHub Pages (gh-pages branch) with ghp-import instead of rsync",
        "dry_run": "show what would be uploaded, upload nothing",
        "announce": "then email new articles to subscribers (invoke announce --check-live)",
    }
)
def publish(c, target="", github=False, dry_run=False, announce=False):
    """Build with publishconf.py and upload output/ (rsync over ssh, or GitHub Pages)."""
    try:
        _publish(target, github, dry_run, announce)
    finally:  # while `invoke serve` runs, output/ is built back the way it serves it
        served = _served()
        if served:
            _build(**served)


def _publish(target, github, dry_run, announce):
    from blog import publish as pub

    _build("publishconf.py")
    try:
        folder = pub.checked_output(OUTPUT)
        if github and dry_run:  # ghp-import would still commit the branch: only say what it would
            print("\n".join(pub.github_plan(folder)))
            return
        if github:
            command = pub.ghp_command(folder)
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
    accepted, lines = pub.after_upload(folder, dry_run=dry_run)  # WebSub: WEBSUB_HUB, if set
    if lines:
        print("\n".join(lines), file=sys.stdout if accepted else sys.stderr)
    if announce and not dry_run:
        _announce(check_live=True)


@task
def feed(c):
    """Rebuild only the feeds (RSS, Atom, JSON Feed) in output/feeds/."""
    from blog.build import BuildError, build_feeds

    try:
        for path in build_feeds(**_served()):
            print(f"wrote output/{path}")
    except BuildError as error:
        raise Exit(f"Feeds not written:\n{error}", code=1) from None


@task(help={"title": "the article's title"})
def new(c, title):
    """Start a new draft article in content/articles/ with a fresh Id and today's date."""
    from blog.content import NewArticleError, new_article

    try:
        path = new_article(ROOT / "content" / "articles", title)
    except NewArticleError as error:
        raise Exit(str(error), code=1) from None
    print(f"Created {path.relative_to(ROOT)} (Status: draft); remove that line to publish it.")


@task(
    help={
        "quick": "only the quick tests (-m 'not slow': no Chromium, servers, Java), under a minute",
        "args": "extra arguments for pytest, e.g. '-k feeds -x' or '--randomly-seed=N'",
    }
)
def test(c, quick=False, args=""):
    """Run the test suite (pytest), in a random order (the seed is in its header)."""
    marks = '-m "not slow" ' if quick else ""
    c.run(f"{PY} -m pytest {marks}{args}", pty=False)


@task
def lint(c):
    """Check code style and formatting with ruff, and the import contracts with import-linter."""
    c.run(f"{PY} -m ruff check .")
    c.run(f"{PY} -m ruff format --check .")
    c.run(f"{Path(PY).parent / 'lint-imports'}")


@task(help={"sizes": "article counts to build, comma-separated"})
def bench(c, sizes="200,2000"):
    """Run the benchmarks in bench/ and print the results (build time, page weight)."""
    c.run(f"{PY} bench/build_speed.py --sizes {sizes}")
    c.run(f"{PY} bench/page_weight.py")


@task
def lighthouse(c):
    """Run Lighthouse on an article with a video and on /videos/.

    Installs it from npm the first time, into node_modules/; accessibility, best practices and
    SEO must be 1.0."""
    c.run(f"{PY} bench/lighthouse.py")


@task
def docs(c):
    """Regenerate docs/settings.md from the settings' definitions."""
    from newsletter import settings_doc

    (ROOT / settings_doc.PAGE).write_text(settings_doc.render(), encoding="utf-8", newline="\n")
    print(f"wrote {settings_doc.PAGE}")


# Subscribers: `invoke subscribers.list` etc., front doors into newsletter.subscriptions.admin
def _admin(function, *args, **kwargs):
    from newsletter.settings import ConfigError, Settings
    from newsletter.subscriptions import admin

    try:
        return getattr(admin, function)(Settings.from_env(), *args, **kwargs)
    except (admin.AdminError, ConfigError) as error:
        raise Exit(str(error), code=1) from None


def _send_confirmations():
    counts = _admin("send_queued", timeout=15)
    if counts["queued"] or counts["sending"]:
        print(f"{counts['queued'] + counts['sending']} email(s) still queued: they are retried.")


@task(name="list", help={"status": "only this status (unconfirmed, confirmed, unsubscribed, ...)"})
def subscribers_list(c, status=None):
    """List subscribers with their status (bounced, complained: with the providers' last word)."""
    from newsletter.subscriptions.admin import format_subscribers

    found = _admin("list_subscribers", status)
    reasons = _admin("last_reasons", found) if status in ("bounced", "complained") else None
    print(format_subscribers(found, reasons))


@task(
    name="add",
    help={
        "email": "the address",
        "confirmed": "skip the confirmation email",
        "welcome": "with --confirmed: send the welcome email too",
    },
)
def subscribers_add(c, email, confirmed=False, welcome=False):
    """Add a subscriber; a confirmation email is sent unless --confirmed."""
    subscriber, added = _admin("add", email, confirmed=confirmed, welcome=welcome)
    state = "Added" if added else "Already on the list"
    print(f"{state}: {subscriber.email} ({subscriber.status})")
    _send_confirmations()


@task(name="remove", help={"email": "the address"})
def subscribers_remove(c, email):
    """Unsubscribe an address (the record stays, so it is never re-imported)."""
    print(f"Unsubscribed: {_admin('remove', email).email}")


@task(
    name="import",
    help={
        "file": "a CSV file with an email column",
        "confirmed": "no emails",
        "welcome": "with --confirmed: a welcome email to each reader added",
    },
)
def subscribers_import(c, file, confirmed=False, welcome=False):
    """Import addresses from CSV: checked, de-duplicated; confirmed only with --confirmed."""
    from newsletter.subscriptions.admin import format_report

    report = _admin("import_csv", file, confirmed=confirmed, welcome=welcome)
    print(format_report(report, confirmed, welcome))
    if not confirmed or welcome:
        _send_confirmations()


@task(name="export", help={"file": "where to write the CSV (default: standard output)"})
def subscribers_export(c, file=""):
    """Export every subscriber as CSV (a --file is made 0600: only you can read it)."""
    from newsletter.private_files import open_private

    if not file:
        _admin("export_csv", sys.stdout)
        return
    with open_private(file, "w", encoding="utf-8", newline="") as out:
        count = _admin("export_csv", out)
    print(f"Wrote {count} subscriber(s) to {file}", file=sys.stderr)


@task(name="forget", help={"email": "the address to erase"})
def subscribers_forget(c, email):
    """Delete every trace of an address (GDPR erasure).

    The record, its queued emails, the exercise plans it follows, and every file of the outbox
    and its previews that names it."""
    follows = _admin("forget_follows", email)  # the exercise plans it follows
    subscriber, files = _admin("forget", email)
    if subscriber is None and not files and not follows:
        print(f"Nothing stored for {email}.")
    else:
        print(f"Forgot {email}: subscriber record {'deleted' if subscriber else 'absent'}, "
              f"{follows} plan follow(s) deleted, "
              f"{len(files)} file(s) naming it deleted (outbox and previews).")  # fmt: skip


@task(name="stats")
def subscribers_stats(c):
    """Show subscribers by status, followers per exercise plan, what was sent and what came back.

    Confirmation emails, and per announcement and for the last 30 days: sent, bounces,
    complaints and the complaint rate (with warnings)."""
    from newsletter.announcements import stats as delivery
    from newsletter.database import Database
    from newsletter.settings import Settings
    from newsletter.subscriptions.admin import format_stats

    print(format_stats(_admin("stats")))
    database = Database(Settings.from_env().database)
    try:
        print(delivery.format_stats(delivery.stats(database)))
    finally:
        database.close()


subscribers = Collection(
    "subscribers",
    subscribers_list,
    subscribers_add,
    subscribers_remove,
    subscribers_import,
    subscribers_export,
    subscribers_forget,
    subscribers_stats,
)


# Announcements: `invoke announce`, a thin front door into newsletter.announcements.run
def _announce(**options):
    from newsletter.announcements import run as announce
    from newsletter.announcements.feed import FeedError
    from newsletter.announcements.ledger import LedgerLocked
    from newsletter.announcements.test_send import TestSendRefused
    from newsletter.settings import ConfigError

    testing = options.get("test") is not None
    try:
        summary = announce.run(progress=announce.TerminalProgress(), **options)
    except (ConfigError, FeedError, LedgerLocked, announce.TooManyNewItems,
            announce.ItemRefused, TestSendRefused) as error:  # fmt: skip
        raise Exit(f"{'Test not sent' if testing else 'Not announced'}: {error}", code=1) from None
    print("\n".join(summary.lines()))
    if not summary.ok and testing:
        raise Exit("The test email did not go out (see above); nothing was recorded.", code=1)
    if not summary.ok and not options.get("dry_run"):
        raise Exit("Not every email went out (see above); run `invoke announce` again.", code=1)


@task(
    name="run",
    default=True,
    help={
        "dry_run": "render every email to var/outbox/preview/, send and record nothing",
        "feed_url": "read this feed (a URL or a file) instead of output/feeds/all.rss.xml",
        "send_existing": "on the first run, announce the articles already in the feed",
        "check_live": "announce an article only once its page answers 200",
        "yes": "send even more new items than NEWSLETTER_ANNOUNCE_MAX_ITEMS (checked by you)",
        "item": "send only this article, recorded earlier without an email: its slug, guid or URL",
        "test": "send what the next run would send, one email of each kind, to this address only "
        "('[Test]' in the Subject), through the live transport; record nothing",
        "as_of": "run as if it were this moment (ISO 8601, e.g. 2026-12-07T08:00Z): a late "
        "run's weekly digest, or a rehearsal",
    },
)
def announce_run(c, dry_run=False, feed_url="", send_existing=False, check_live=False, yes=False,
                 item="", test=None, as_of=""):  # fmt: skip
    """Email each new article in the feed to every confirmed subscriber.

    Exit 1 if any email failed, or if more new items than NEWSLETTER_ANNOUNCE_MAX_ITEMS wait
    for --yes. With --item, send one article the ledger recorded without an email. With
    --test you@example.com, send one of each email the next run would send to that address only,
    and record nothing."""
    # test: None is no test; an empty `--test ""` is a test, refused for its missing address
    clock = None
    if as_of:
        from datetime import UTC, datetime

        try:
            moment = datetime.fromisoformat(as_of.replace("Z", "+00:00"))
        except ValueError:
            raise Exit(f"--as-of {as_of!r}: use ISO 8601, e.g. 2026-12-07T08:00Z", code=1) from None
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        clock = lambda: moment  # noqa: E731 - the run's "now"
    _announce(dry_run=dry_run, feed_url=feed_url or None, send_existing=send_existing,
              check_live=check_live, yes=yes, item=item or None, test=test,
              clock=clock)  # fmt: skip


@task(name="preview", help={"no_open": "only write the page, do not open a browser"})
def announce_preview(c, no_open=False):
    """Open the latest announcement email (or the newest article's) as a page in the browser."""
    import webbrowser

    from newsletter.announcements import run as announce
    from newsletter.announcements.feed import FeedError
    from newsletter.settings import ConfigError

    try:
        page = announce.preview()
    except (ConfigError, FeedError, ValueError) as error:
        raise Exit(f"No preview: {error}", code=1) from None
    print(f"wrote {page}")
    if not no_open:
        webbrowser.open(page.as_uri())


announce_tasks = Collection("announce", announce_run, announce_preview)


# Plan reminders: `invoke reminders`, a thin front door into newsletter.announcements.reminders
@task(
    help={
        "as_of": "run as if it were this moment: ISO 8601, e.g. 2026-12-07T08:00 (no offset: "
        "NEWSLETTER_TIMEZONE), to catch up after downtime"
    }
)
def reminders(c, as_of=""):
    """Send the weekly emails of the exercise plans readers follow, as they fall due.

    Safe to run every few minutes (the timer does): each email goes once. Exit 1 if an email
    failed or is still pending, or the site's plans could not be read."""
    from newsletter.announcements import reminders as plan_reminders
    from newsletter.database import DatabaseError
    from newsletter.settings import ConfigError, Settings

    try:
        settings = Settings.from_env()
        moment = plan_reminders.parse_moment(as_of, settings.core.timezone) if as_of else None
        summary = plan_reminders.run(settings, as_of=moment)
    except (ConfigError, DatabaseError, ValueError, plan_reminders.RemindersLocked) as error:
        raise Exit(f"No reminders sent: {error}", code=1) from None
    print("\n".join(summary.lines()))
    if not summary.ok:
        raise Exit("Not every reminder went out (see above); the next run tries again.", code=1)


# Bounces: `invoke bounces.fetch`, a thin front door into newsletter.subscriptions.bounces
@task(name="fetch", help={"verbose": "also list the messages left in the folder, and why"})
def bounces_fetch(c, verbose=False):
    """Read the bounce mailbox (IMAP): record bounces and complaints, move what was handled."""
    from newsletter.database import DatabaseError
    from newsletter.settings import ConfigError, Settings
    from newsletter.subscriptions import bounces

    try:
        report = bounces.fetch(Settings.from_env())
    except (bounces.MailboxError, ConfigError, DatabaseError) as error:
        raise Exit(f"Bounce mailbox not read: {error}", code=1) from None
    print("\n".join(report.lines()))
    if verbose:
        print("\n".join(f"  left: {line}" for line in report.left))


@task(name="review", help={"clear": "empty the list once you have dealt with it"})
def bounces_review(c, clear=False):
    """List the bounce and complaint reports that proved nothing and changed nobody."""
    print("\n".join(_admin("review_lines", clear=clear)))


bounces_tasks = Collection("bounces", bounces_fetch, bounces_review)


# The database: `invoke db.copy --to URL`, a front door into newsletter.dbcopy
@task(
    name="copy",
    help={"to": "the target: a postgresql:// URL or a path to a new SQLite file (must be empty)"},
)
def db_copy(c, to):
    """Copy the whole list (NEWSLETTER_DATABASE) into an empty database, and check the counts."""
    from newsletter import dbcopy
    from newsletter.database import DatabaseError
    from newsletter.settings import ConfigError, Settings

    try:
        settings = Settings.from_env()
        target = to if "://" in to else Path(to).expanduser().resolve()
        counts = dbcopy.copy(settings.core.database, target)
    except (dbcopy.CopyRefused, dbcopy.CopyFailed, DatabaseError, ConfigError) as error:
        raise Exit(f"db.copy: {error}", code=1) from None
    from newsletter.postgres import redact

    shown = redact(to) if "://" in to else str(target)
    for table, count in counts.items():
        print(f"  {table}: {count}")
    print(f"Copied {sum(counts.values())} rows into {shown}; counts checked, table by table.")


db_tasks = Collection("db", db_copy)
ns = Collection(
    clean, build, rebuild, serve, preview, publish, feed, new, test, lint, bench, lighthouse, docs
)
ns.add_task(reminders)
ns.add_collection(subscribers)
ns.add_collection(announce_tasks)
ns.add_collection(bounces_tasks)
ns.add_collection(db_tasks)
