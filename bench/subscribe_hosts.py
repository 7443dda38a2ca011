"""Sign-ups through nginx: one host on SQLite against two hosts on one PostgreSQL, side by side.

What is measured: `POST /newsletter/subscribe` per second, latency (p50, p99) and answers other
than 200, through the real nginx of deploy/ (HTTPS) in front of gunicorn (3 sync workers, the
service's own command line), as docs/deployment.md deploys it:
- `sqlite`: one host (nginx + gunicorn) on a SQLite file;
- `postgres`: two hosts (each its own nginx + gunicorn), one PostgreSQL server (started here,
  durable: fsync on) holding the list; the load is split evenly between the two.
The load is `wrk` (one process per host, each address fresh), from this same 2-core machine, so
the hosts, the database server and the load share two cores: the figures compare the two
set-ups, they are not a capacity. Afterwards the script waits for every sign-up request to be
applied and counts the subscribers stored against the 200 answers: "lost" is an answered
sign-up that is not stored. Runs alternate (A B A B) and the table gives each run and the
medians.

Usage: python bench/subscribe_hosts.py [--pairs 2] [--duration 15] [--connections 32]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests import backends  # noqa: E402 - the test run's server, the deploy helpers
from tests.test_deploy import free_port, self_signed_certificate, stop  # noqa: E402
from tests.test_deploy_hosts import start_host  # noqa: E402

LUA = r"""
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("id", #threads)
end
function init(args)
  n, ok, bad, prefix = 0, 0, 0, args[1]
end
function request()
  n = n + 1
  local body = "email=" .. prefix .. "-" .. id .. "-" .. n .. "%40example.com&website="
  return wrk.format("POST", "/newsletter/subscribe", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Accept"] = "application/json",
  }, body)
end
function response(status, headers, body)
  if status == 200 then ok = ok + 1 else
    bad = bad + 1
    if bad < 3 then io.stderr:write("status " .. status .. ": " .. body:sub(1, 200) .. "\n") end
  end
end
function done(summary, latency, requests)
  local ok_total, bad_total = 0, 0
  for _, t in ipairs(threads) do
    ok_total = ok_total + t:get("ok")
    bad_total = bad_total + t:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'RESULT {"requests": %d, "duration_s": %.3f, "ok": %d, "not_ok": %d, '
    .. '"p50_ms": %.3f, "p99_ms": %.3f, "errors": %d}\n',
    summary.requests, summary.duration / 1e6, ok_total, bad_total,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3,
    e.connect + e.read + e.write + e.timeout))
end
"""


UNLIMITED = {"NEWSLETTER_RATE_LIMIT": "1000000000/second"}  # all the load comes from 127.0.0.1


def wrk(url: str, prefix: str, connections: int, duration: int, script: Path):
    return subprocess.Popen(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "--latency",
         "-s", str(script), url + "/newsletter/subscribe", "--", prefix],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip


def result_of(process) -> dict:
    out, _ = process.communicate()
    line = next(x for x in out.splitlines() if x.startswith("RESULT "))
    return json.loads(line.removeprefix("RESULT "))


def stored(database) -> int:
    """Subscribers stored once every sign-up request is applied (waits for the senders)."""
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        (pending,) = backends.query(database, "SELECT count(*) FROM signup_requests")[0]
        if not pending:
            break
        time.sleep(0.5)
    return backends.query(database, "SELECT count(*) FROM subscribers")[0][0]


def one_run(kind: str, server, connections: int, duration: int, run: int) -> dict:
    folder = Path(tempfile.mkdtemp(prefix=f"hosts-{kind}-"))
    cert, key = folder / "cert.pem", folder / "key.pem"
    self_signed_certificate(cert, key)
    content = folder / "content"
    shutil.copytree(ROOT / "content", content)
    database = server.empty() if kind == "postgres" else folder / "newsletter.sqlite3"
    count = 2 if kind == "postgres" else 1
    ports = [free_port() for _ in range(count)]
    public = f"https://127.0.0.1:{ports[0]}"
    hosts = []
    script = folder / "subscribe.lua"
    script.write_text(LUA)
    try:
        for n in range(count):
            site = folder / "h0" / "site"
            hosts.append(start_host(f"h{n}", folder / f"h{n}", ports[n], public, str(database),
                                    cert, key, site, content, extra=UNLIMITED))  # fmt: skip
        time.sleep(2)  # every worker booted
        loads = [wrk(h.stack.url, f"r{run}h{n}", connections // count, duration, script)
                 for n, h in enumerate(hosts)]  # fmt: skip
        results = [result_of(p) for p in loads]
        ok = sum(r["ok"] for r in results)
        kept = stored(database)
        return {
            "kind": kind,
            "rps": sum(r["requests"] for r in results) / max(r["duration_s"] for r in results),
            "p50_ms": max(r["p50_ms"] for r in results),
            "p99_ms": max(r["p99_ms"] for r in results),
            "not_200": sum(r["not_ok"] + r["errors"] for r in results),
            "ok": ok,
            "stored": kept,
            "lost": max(0, ok - kept),
        }
    finally:
        for host in hosts:
            stop(host.nginx, "nginx")
            if host.gunicorn.poll() is None:
                stop(host.gunicorn, "gunicorn")
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk")
    server = backends.PostgresServer(Path(tempfile.mkdtemp(prefix="bench-postgres-")))
    server.start(durable=True)
    rows = []
    try:
        for run in range(args.pairs):
            for kind in ("sqlite", "postgres"):
                row = one_run(kind, server, args.connections, args.duration, run)
                rows.append(row)
                print(json.dumps(row), flush=True)
    finally:
        server.stop()
        shutil.rmtree(server.folder, ignore_errors=True)
    print()
    print(
        "| set-up | run | sign-ups/s | p50 ms | p99 ms | not 200 | answered 200 | stored | lost |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for n, row in enumerate(rows):
        print(f"| {row['kind']} | {n // 2 + 1} | {row['rps']:,.0f} | {row['p50_ms']:.1f} | "
              f"{row['p99_ms']:.1f} | {row['not_200']} | {row['ok']:,} | {row['stored']:,} | "
              f"{row['lost']} |")  # fmt: skip
    for kind in ("sqlite", "postgres"):
        mine = [r for r in rows if r["kind"] == kind]
        print(f"median {kind}: {statistics.median(r['rps'] for r in mine):,.0f} sign-ups/s, "
              f"p99 {statistics.median(r['p99_ms'] for r in mine):.1f} ms, "
              f"lost {sum(r['lost'] for r in mine)}")  # fmt: skip


if __name__ == "__main__":
    main()
