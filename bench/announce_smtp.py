"""Announcing one article over SMTP to 10,000 and 100,000 subscribers, against an aiosmtpd sink.

What is measured, each in a fresh Python subprocess (so ru_maxrss is that scenario's own peak):
- "ours": `newsletter.announcements.run.run()` with NEWSLETTER_TRANSPORT=smtp: read the feed, take
  the lock, plan N deliveries in one transaction, compose each message (its own unsubscribe token
  and Message-ID), check the subscriber is still confirmed, send through the pool (4 workers,
  reused connections) and record every result in SQLite as soon as the server accepts it.
- "ceiling": the sink's own ceiling: a bare sender, the same 4 threads with reused connections,
  sending the same pre-built message bytes, no ledger, no composing.
- "transport": our own SMTP mailer alone (`newsletter.mail.smtp.SmtpMailer`: one thread, the same
  number of connections, PIPELINING when the sink offers it), pushed the same pre-built message
  bytes, reports counted and dropped: no ledger, no composing. What the rest costs is ours minus
  this.
- "naive": the straightforward loop: per subscriber, build the email with the email package
  (the same message, `Composer.message`), open a new SMTP connection (connect, EHLO, MAIL,
  RCPT, DATA, QUIT), send, no ledger. It is slow, so it runs on a sample (default 3,000
  messages) and its rate is reported.
- "naive_prebuilt": the connection cost alone: a new connection per message, but the message
  bytes pre-built (as the ceiling sends them). Reported next to "naive" for transparency.
- "smtp_source": the yardstick: Postfix's smtp-source (C) sending the same message bytes (the
  file of one real announcement, -F) the same number of times over as many parallel connections
  as our workers, each connection kept open (-d). Its CPU is smtp-source's own; no peak.
The sink is aiosmtpd on 127.0.0.1 in its own process, accepting everything and counting
(--sink aiosmtpd, the default, so older figures stay comparable), or Postfix's smtp-sink (C,
--sink postfix: `smtp-sink -c 127.0.0.1:PORT 1000`, counting accepted messages with -c; the
programs come from `apt-get download postfix`, unpacked on first use, see bench/postfix_tools.py).
The machine has 2 cores: the sink takes one, the sender the other. Messages per second = messages /
wall time of the sending phase (for "ours": the whole run() call, feed to summary, its modules
imported before the clock starts, the database driver included: sqlite3 is imported with the
newsletter's modules, psycopg only when a PostgreSQL database is opened; on PostgreSQL the list
of readers is vacuumed and analysed once made, as autovacuum leaves a list that has been there a
while). Peak memory =
the scenario's subprocess's own peak resident memory (VmHWM, the Python interpreter and imports
included), not its ru_maxrss: Linux carries a parent's peak over to its child through fork (or
vfork) and exec, so ru_maxrss would be at least this bench's own peak, its database of N
subscribers included (ru_maxrss where /proc is not there).
Targets: ours >= 85% of the ceiling, >= 3x naive, peak memory < 150 MB and flat 10k -> 100k.

Usage: python bench/announce_smtp.py [--sizes 10000,100000] [--naive 3000] [--workers 4]
                                    [--sink aiosmtpd|postfix]
Results also go to bench/results/announce_smtp.json (announce_smtp-postfix.json for --sink postfix).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import resource
import shutil
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "announce_smtp.json"
SECRET = "bench-secret-key-" + "x" * 32


# The sink: its own process -------------------------------------------------------------------
def _sink(port_queue, counter):
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server, session, envelope):
            with counter.get_lock():
                counter.value += len(envelope.rcpt_tos)
            return "250 2.0.0 OK"

    class Free(Controller):
        def _trigger_server(self):
            self.port = self.server.sockets[0].getsockname()[1]
            super()._trigger_server()

    controller = Free(Count(), hostname="127.0.0.1", port=0, ready_timeout=10)
    controller.start()
    port_queue.put(controller.port)
    threading.Event().wait()


def start_sink(kind: str = "aiosmtpd", folder: Path | None = None):
    """The sink, its port and its counter (`.value` = messages accepted so far)."""
    if kind == "postfix":
        from postfix_tools import PostfixSink

        sink = PostfixSink(folder)
        return sink, sink.port, sink
    context = multiprocessing.get_context("fork")
    queue, counter = context.Queue(), context.Value("q", 0)
    process = context.Process(target=_sink, args=(queue, counter), daemon=True)
    process.start()
    return process, queue.get(timeout=20), counter


# Fixtures: a database with N confirmed subscribers, a feed with one new article -------------
def database_of(folder: Path):
    """The run's database: a PostgreSQL database when `--database postgresql` made one (its URL
    in `database.url`), else the SQLite file."""
    url = folder / "database.url"
    return url.read_text() if url.exists() else folder / "newsletter.sqlite3"


def make_database(folder: Path, count: int):
    from newsletter.subscriptions.subscribers import Subscribers

    if server := os.environ.get("BENCH_POSTGRES"):  # a fresh database on the bench's server
        import psycopg

        name = f"bench_{folder.name.lower().replace('-', '_')}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        base, _, query = server.partition("?")
        (folder / "database.url").write_text(f"{base.rsplit('/', 1)[0]}/{name}?{query}")
    store = Subscribers.open(database_of(folder))
    now = store.database.now()
    with store.database.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
            " created_at, status_changed_at, confirmed_at) VALUES (?, ?, ?, 'confirmed', 'n',"
            " ?, ?, ?)",
            ((f"pub-{n:08d}-xxxxxxxxxx", f"reader{n}@example.com", f"reader{n}@example.com",
              now, now, now) for n in range(count)),
        )  # fmt: skip
    store.close()
    if server:  # a list that has been there a while: vacuumed and analysed, as autovacuum
        import psycopg  # leaves it (not in the middle of the run, 60 s after the rows came)

        with psycopg.connect(database_of(folder), autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE subscribers")
    return database_of(folder)


def make_feed(folder: Path) -> Path:
    when = format_datetime(datetime.now(UTC) - timedelta(hours=1))
    summary = "&lt;p&gt;" + "An article about knees and the gluteus medius. " * 6 + "&lt;/p&gt;"
    path = folder / "all.rss.xml"
    path.write_text(
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0" '
        'xmlns:st="urn:x-stay-tuned:article:1"><channel><title>Walk Again</title>'
        "<link>https://walkagain.example/</link><description>d</description><item>"
        "<title>The Best Muscle to Train for Knee Pain</title>"
        "<link>https://walkagain.example/2026/the-best-muscle-to-train-for-knee-pain/</link>"
        '<guid isPermaLink="false">urn:uuid:6f1d7c52-3b8e-4f0a-9a57-2c4e8d1b9e30</guid>'
        "<st:subtitle>Gluteus Medius, the most important hip muscle</st:subtitle>"
        f"<description>{summary}</description><pubDate>{when}</pubDate>"
        '<enclosure url="https://walkagain.example/images/g.png" length="1" type="image/png"/>'
        "</item></channel></rss>",
        encoding="utf-8",
    )
    return path


def settings(database: Path, port: int, workers: int):
    from newsletter.settings import Settings

    return Settings(
        database=database_of(database.parent),
        outbox=database.parent / "outbox",
        secret_key=SECRET,
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_security="none",
        smtp_workers=workers,
        sender="Walk Again <news@walkagain.example>",
        site_url="https://walkagain.example",
        base_url="https://walkagain.example/newsletter",
        postal_address="Walk Again, 2 Mill Lane, Leeds LS1 1AA",
    )


def composer_for(config):
    from newsletter.announcements.emails import Composer, drafts
    from newsletter.announcements.feed import read_feed
    from newsletter.announcements.ledger import Announcement
    from newsletter.subscriptions.tokens import Tokens

    feed = read_feed(config.mail.outbox.parent / "all.rss.xml")
    (draft,) = drafts(feed.items, config)
    announcement = Announcement(1, draft.kind, draft.key, draft.subject, draft.items, "", None)
    return Composer(config, Tokens(config.secret_key), announcement)


def sample_bytes(config) -> bytes:
    """One real announcement message, as ours would send it."""
    from newsletter.announcements.ledger import Delivery

    delivery = Delivery(1, 1, 0, 1, "pub-00000000-xxxxxxxxxx", "r@example.com")
    return composer_for(config).outgoing(delivery).data


def own_peak_mb() -> float:
    """This process's own peak resident memory in MB, since its exec: VmHWM (Linux); else
    ru_maxrss, which on Linux is at least the parent's peak (see the module's docstring)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Scenarios (each runs in its own subprocess) ----------------------------------------------
def ours(folder: Path, port: int, count: int, workers: int) -> dict:
    from newsletter.announcements import run as announce

    config = settings(folder / "newsletter.sqlite3", port, workers)
    if not isinstance(config.database, Path):  # as sqlite3 is: imported before the clock
        import newsletter.postgres  # noqa: F401 - psycopg and its adapters
    started = time.perf_counter()
    summary = announce.run(config, feed_url=folder / "all.rss.xml", send_existing=True)
    elapsed = time.perf_counter() - started
    assert summary.ok and summary.tally.sent == count, summary.lines()
    return {"messages": summary.tally.sent, "seconds": elapsed}


def ceiling(folder: Path, port: int, count: int, workers: int) -> dict:
    config = settings(folder / "newsletter.sqlite3", port, workers)
    data = sample_bytes(config)
    lock, left = threading.Lock(), [count]

    def work():
        smtp = smtplib.SMTP("127.0.0.1", port)
        while True:
            with lock:
                if not left[0]:
                    break
                left[0] -= 1
                n = left[0]
            smtp.sendmail("news@walkagain.example", [f"reader{n}@example.com"], data)
        smtp.quit()

    threads = [threading.Thread(target=work) for _ in range(workers)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"messages": count, "seconds": time.perf_counter() - started}


def transport(folder: Path, port: int, count: int, workers: int) -> dict:
    from newsletter import mail

    config = settings(folder / "newsletter.sqlite3", port, workers)
    data = sample_bytes(config)
    accepted = [0]

    def report(outgoings, error):
        assert error is None, error
        accepted[0] += len(outgoings)

    mailer = mail.connect(config, report, workers=workers)
    started = time.perf_counter()
    for n in range(count):
        mailer.push(mail.Outgoing(to=f"reader{n}@example.com", message_id="", data=data))
    mailer.flush()
    seconds = time.perf_counter() - started
    mailer.close()
    assert accepted[0] == count
    return {"messages": count, "seconds": seconds}


def naive(folder: Path, port: int, count: int, workers: int) -> dict:
    """The straightforward loop: per subscriber, build the email with the email package (the
    same message, through Composer.message), open a connection, send it, quit."""
    from newsletter.announcements.ledger import Delivery

    config = settings(folder / "newsletter.sqlite3", port, workers)
    composer = composer_for(config)
    started = time.perf_counter()
    for n in range(count):
        delivery = Delivery(n, 1, 0, n, f"pub-{n:08d}-xxxxxxxxxx", f"reader{n}@example.com")
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.send_message(composer.message(delivery))
    return {"messages": count, "seconds": time.perf_counter() - started}


def naive_prebuilt(folder: Path, port: int, count: int, workers: int) -> dict:
    """Only the connection cost: a new connection per message, the message bytes pre-built."""
    config = settings(folder / "newsletter.sqlite3", port, workers)
    data = sample_bytes(config)
    started = time.perf_counter()
    for n in range(count):
        with smtplib.SMTP("127.0.0.1", port) as smtp:
            smtp.sendmail("news@walkagain.example", [f"reader{n}@example.com"], data)
    return {"messages": count, "seconds": time.perf_counter() - started}


def smtp_source(folder: Path, port: int, count: int, workers: int) -> dict:
    """The yardstick: Postfix's smtp-source sending the same message bytes over `workers`
    reused connections."""
    from postfix_tools import smtp_source as run_smtp_source

    config = settings(folder / "newsletter.sqlite3", port, workers)
    data = sample_bytes(config).replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    message = folder / "message.eml"
    message.write_bytes(data)
    result = run_smtp_source(port, message, count, workers)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result["message_bytes"] = len(data)
    # smtp-source's ru_maxrss would be this interpreter's, inherited through fork: not reported
    result["peak_mb"] = None
    result["cpu_us_per_msg"] = (usage.ru_utime + usage.ru_stime) / count * 1e6  # smtp-source's
    return result


SCENARIOS = {"ours": ours, "ceiling": ceiling, "transport": transport, "naive": naive,
             "naive_prebuilt": naive_prebuilt, "smtp_source": smtp_source}  # fmt: skip


def run_scenario(name: str, folder: Path, port: int, count: int, workers: int) -> dict:
    """`name` in a fresh interpreter; its result with msgs/s and its peak memory."""
    command = [sys.executable, __file__, "--scenario", name, "--folder", str(folder),
               "--port", str(port), "--count", str(count), "--workers", str(workers)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["msgs_per_s"] = result["messages"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--naive", type=int, default=3000, help="messages for the naive loop")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scenario", choices=SCENARIOS)
    parser.add_argument("--folder")
    parser.add_argument("--port", type=int)
    parser.add_argument("--count", type=int)
    parser.add_argument(
        "--sink", choices=("aiosmtpd", "postfix"), default="aiosmtpd",
        help="aiosmtpd (default, as the older figures) or Postfix's smtp-sink",
    )  # fmt: skip
    parser.add_argument(
        "--database", choices=("sqlite", "postgresql"), default="sqlite",
        help="the list on a SQLite file (default) or on a PostgreSQL server started here "
        "(durable: fsync on; needs initdb, as bin/setup --test installs)",
    )  # fmt: skip
    args = parser.parse_args()
    if args.scenario:  # a child: one scenario, its result as the last line of JSON
        result = SCENARIOS[args.scenario](Path(args.folder), args.port, args.count, args.workers)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        result.setdefault("peak_mb", own_peak_mb())
        result.setdefault(
            "cpu_us_per_msg", (usage.ru_utime + usage.ru_stime) / result["messages"] * 1e6
        )
        print(json.dumps(result))
        return

    if args.database == "postgresql":
        sys.path.insert(0, str(ROOT))
        from tests.backends import PostgresServer

        server = PostgresServer(Path(tempfile.mkdtemp(prefix="bench-postgres-")))
        os.environ["BENCH_POSTGRES"] = server.start(durable=True).url()
        try:
            return _main(args)
        finally:
            server.stop()
            shutil.rmtree(server.folder, ignore_errors=True)  # its data: gigabytes at 100k
    return _main(args)


def _main(args) -> None:
    sink_folder = tempfile.TemporaryDirectory()
    sink, port, counter = start_sink(args.sink, Path(sink_folder.name))
    results = (
        RESULTS if args.sink == "aiosmtpd" else RESULTS.with_name("announce_smtp-postfix.json")
    )
    if args.database == "postgresql":
        results = results.with_name(results.stem + "-postgresql.json")
    report = {
        "sink": args.sink,
        "database": args.database,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "load_before": os.getloadavg()[0],
        "workers": args.workers,
        "runs": [],
    }
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            with tempfile.TemporaryDirectory() as temporary:
                folder = Path(temporary)
                make_database(folder, size)
                make_feed(folder)
                row = {"subscribers": size}
                plan = [("smtp_source", size), ("ceiling", size), ("transport", size),
                        ("ours", size), ("naive", args.naive),
                        ("naive_prebuilt", args.naive)]  # fmt: skip
                for name, count in plan:
                    before = counter.value
                    row[name] = run_scenario(name, folder, port, count, args.workers)
                    row[name]["sink_counted"] = counter.value - before
                row["ours_vs_smtp_source"] = (
                    row["ours"]["msgs_per_s"] / row["smtp_source"]["msgs_per_s"]
                )
                row["ours_vs_ceiling"] = row["ours"]["msgs_per_s"] / row["ceiling"]["msgs_per_s"]
                row["ours_vs_transport"] = (
                    row["ours"]["msgs_per_s"] / row["transport"]["msgs_per_s"]
                )
                row["ours_vs_naive"] = row["ours"]["msgs_per_s"] / row["naive"]["msgs_per_s"]
                row["ours_vs_naive_prebuilt"] = (
                    row["ours"]["msgs_per_s"] / row["naive_prebuilt"]["msgs_per_s"]
                )
                report["runs"].append(row)
                print(
                    f"{size:>7} subscribers ({args.sink}) | smtp-source "
                    f"{row['smtp_source']['msgs_per_s']:7.0f} msg/s | ours "
                    f"{row['ours']['msgs_per_s']:7.0f} msg/s "
                    f"{row['ours']['peak_mb']:5.1f} MB | ceiling "
                    f"{row['ceiling']['msgs_per_s']:7.0f} msg/s "
                    f"{row['ceiling']['peak_mb']:5.1f} MB | transport "
                    f"{row['transport']['msgs_per_s']:7.0f} msg/s | naive "
                    f"{row['naive']['msgs_per_s']:6.0f} msg/s {row['naive']['peak_mb']:5.1f} MB | "
                    f"naive prebuilt {row['naive_prebuilt']['msgs_per_s']:6.0f} msg/s | "
                    f"ours/smtp-source {row['ours_vs_smtp_source']:.0%} | "
                    f"ours/ceiling {row['ours_vs_ceiling']:.0%} | ours/transport "
                    f"{row['ours_vs_transport']:.0%} | ours/naive "
                    f"{row['ours_vs_naive']:.1f}x (prebuilt {row['ours_vs_naive_prebuilt']:.1f}x)",
                    flush=True,
                )
    finally:
        sink.terminate()
        sink_folder.cleanup()
    report["load_after"] = os.getloadavg()[0]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {results.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
