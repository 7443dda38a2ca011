"""Announcing one article to 100,000 readers over 8 topics (issue 20), against today's everyone-
gets-everything, over SMTP to the same aiosmtpd sink as bench/announce_smtp.py (its helpers,
imported: the sink, the settings).

Scenarios, each in a fresh Python subprocess (ru_maxrss is that run's own peak), run A B A B
and reported as medians:
- "today" (A): every reader as the migration leaves them: topics NULL (everything), "each".
- "topics" (B): every reader has chosen topics among 8 (a sorted JSON array of 1 to 8 slugs,
  seeded at random) that include the article's, "each": the same 100,000 emails as A, but each
  reader is chosen by the SQL topic condition (`digests.topic_condition`: a LIKE on the array).
Also, once each, not timed against anything: "mixed": random topics among 8, a quarter of the
readers weekly: how many emails and digest rows one article owes, and the run's rate.
"plan_s" is the planning alone (`Ledger.plan` of the article in its one transaction: the
announcement, its owed emails, the weekly readers' digest rows), on a copy of the database.

`--plan-only N`: only the planning, A B alternated N times each in one process (the databases
made once, each plan on a fresh copy): the one step the topics change, without the SMTP noise.

Usage: python bench/announce_topics.py [--count 100000] [--rounds 2] [--workers 4]
       python bench/announce_topics.py --plan-only 5 [--count 100000]
Results also go to bench/results/announce_topics.json (announce_topics-plan.json).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
from announce_smtp import settings, start_sink  # noqa: E402 - bench/ is not a package

RESULTS = ROOT / "bench" / "results" / "announce_topics.json"
TOPICS = ["knees", "hips", "ankles", "back", "shoulders", "running", "walking", "videos"]
SCENARIOS = ("today", "topics", "mixed")


def make_database(folder: Path, count: int, scenario: str) -> Path:
    from newsletter.subscriptions.subscribers import Subscribers

    chance = random.Random(20)
    store = Subscribers.open(folder / "newsletter.sqlite3")
    now = store.database.now()

    def choice(n: int) -> tuple[str | None, str]:
        if scenario == "today":
            return None, "each"
        chosen = set(chance.sample(TOPICS, chance.randint(1, 8)))
        if scenario == "topics":
            chosen.add("knees")
            return json.dumps(sorted(chosen), separators=(",", ":")), "each"
        weekly = "weekly" if chance.random() < 0.25 else "each"
        return json.dumps(sorted(chosen), separators=(",", ":")), weekly

    with store.database.transaction() as db:
        db.executemany(
            "INSERT INTO subscribers (public_id, email, email_key, status, confirm_nonce,"
            " created_at, status_changed_at, confirmed_at, topics, frequency)"
            " VALUES (?, ?, ?, 'confirmed', 'n', ?, ?, ?, ?, ?)",
            ((f"pub-{n:08d}-xxxxxxxxxx", f"reader{n}@example.com", f"reader{n}@example.com",
              now, now, now, *choice(n)) for n in range(count)),
        )  # fmt: skip
    store.close()
    return folder / "newsletter.sqlite3"


def make_feed(folder: Path) -> Path:
    """bench/announce_smtp.py's article, with its topic (the category the blog's feed gives)."""
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
        '<category>Knees</category><category domain="topic">knees</category>'
        "<st:subtitle>Gluteus Medius, the most important hip muscle</st:subtitle>"
        f"<description>{summary}</description><pubDate>{when}</pubDate>"
        "</item></channel></rss>",
        encoding="utf-8",
    )
    return path


def plan_only(folder: Path) -> tuple[float, int, int]:
    """Seconds to plan the article on a copy of the database; emails and digest rows owed."""
    from newsletter.announcements.emails import drafts
    from newsletter.announcements.feed import read_feed
    from newsletter.announcements.ledger import ANNOUNCE, Decision, Ledger
    from newsletter.database import Database

    with tempfile.TemporaryDirectory() as spare:
        copy = Path(spare) / "copy.sqlite3"
        shutil.copy(folder / "newsletter.sqlite3", copy)
        database = Database(copy)
        try:
            (item,) = read_feed(folder / "all.rss.xml").items
            config = settings(copy, 25, 1)
            started = time.perf_counter()
            Ledger(database).plan([Decision(item, ANNOUNCE)], drafts([item], config))
            seconds = time.perf_counter() - started
            db = database.db
            emails = db.execute("SELECT count(*) FROM outgoing_mail").fetchone()[0]
            rows = db.execute("SELECT count(*) FROM digest_items").fetchone()[0]
            return seconds, emails, rows
        finally:
            database.close()


def plans_only(count: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as spare:
        folders = {}
        for name in ("today", "topics", "mixed"):
            folders[name] = Path(spare) / name
            folders[name].mkdir()
            make_database(folders[name], count, name)
            make_feed(folders[name])
        seconds: dict[str, list[float]] = {name: [] for name in folders}
        for round_ in range(rounds):
            for name in ("today", "topics", "mixed"):
                took, emails, rows = plan_only(folders[name])
                seconds[name].append(took)
                print(f"round {round_ + 1} {name:<7} plan {took:.3f} s: {emails} emails, "
                      f"{rows} digest rows", flush=True)  # fmt: skip
    medians = {name: statistics.median(values) for name, values in seconds.items()}
    for name, value in medians.items():
        print(f"median {name:<7} plan {value:.3f} s ({count / value:,.0f} readers/s)")
    (RESULTS.parent / "announce_topics-plan.json").write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "count": count,
        "seconds": seconds, "medians": medians,
    }, indent=1) + "\n")  # fmt: skip


def scenario(name: str, port: int, count: int, workers: int) -> dict:
    from newsletter.announcements import run as announce

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        make_database(folder, count, name)
        feed = make_feed(folder)
        plan_s, emails, digest_rows = plan_only(folder)
        config = settings(folder / "newsletter.sqlite3", port, workers)
        started = time.perf_counter()
        summary = announce.run(config, feed_url=feed, send_existing=True)
        seconds = time.perf_counter() - started
        assert summary.ok and summary.tally.sent == emails, summary.lines()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"scenario": name, "readers": count, "messages": summary.tally.sent,
            "digest_rows": digest_rows, "seconds": seconds, "plan_s": plan_s,
            "peak_mb": peak}  # fmt: skip


def run_scenario(name: str, port: int, count: int, workers: int) -> dict:
    command = [sys.executable, __file__, "--scenario", name, "--port", str(port),
               "--count", str(count), "--workers", str(workers)]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(f"{name} failed:\n{done.stdout}\n{done.stderr}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["msgs_per_s"] = result["messages"] / result["seconds"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds (A B A B: 2)")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--scenario", choices=SCENARIOS)
    parser.add_argument("--port", type=int)
    parser.add_argument("--plan-only", type=int, default=0, help="A B rounds of planning alone")
    options = parser.parse_args()
    if options.plan_only:
        return plans_only(options.count, options.plan_only)
    if options.scenario:
        print(json.dumps(scenario(options.scenario, options.port, options.count,
                                  options.workers)))  # fmt: skip
        return
    sink, port, _counter = start_sink()
    runs: list[dict] = []
    try:
        for round_ in range(options.rounds):
            for name in ("today", "topics"):
                result = run_scenario(name, port, options.count, options.workers)
                runs.append(result)
                print(f"round {round_ + 1} {name:<7} {result['messages']:>7} emails "
                      f"{result['msgs_per_s']:>7.0f} msgs/s  plan {result['plan_s']:.2f} s  "
                      f"peak {result['peak_mb']:.0f} MB", flush=True)  # fmt: skip
        mixed = run_scenario("mixed", port, options.count, options.workers)
        print(f"mixed: {mixed['messages']} emails, {mixed['digest_rows']} digest rows, "
              f"{mixed['msgs_per_s']:.0f} msgs/s, plan {mixed['plan_s']:.2f} s, "
              f"peak {mixed['peak_mb']:.0f} MB")  # fmt: skip
    finally:
        sink.terminate() if hasattr(sink, "terminate") else sink.stop()
    medians = {
        name: {key: statistics.median(r[key] for r in runs if r["scenario"] == name)
               for key in ("msgs_per_s", "plan_s", "peak_mb", "seconds")}
        for name in ("today", "topics")
    }  # fmt: skip
    for name, values in medians.items():
        print(f"median {name:<7} {values['msgs_per_s']:>7.0f} msgs/s  plan "
              f"{values['plan_s']:.2f} s  peak {values['peak_mb']:.0f} MB")  # fmt: skip
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": platform.platform(),
        "python": platform.python_version(), "count": options.count, "runs": runs,
        "mixed": mixed, "medians": medians,
    }, indent=1) + "\n")  # fmt: skip


if __name__ == "__main__":
    main()
