"""Does the answer to `POST /subscribe` take longer for a new address than for a known one?

What is measured: gunicorn (1 sync worker, as in production) on 127.0.0.1 with a fresh
database holding `--known` confirmed subscribers; then `--samples` requests for new addresses
and as many for known, confirmed ones, interleaved (new, known, new, ...), each a form POST with
`Accept: application/json` on a new connection, timed from the first byte sent to the last byte
of the answer (`time.perf_counter`). Reported: median and interquartile range per kind, and the
difference of the medians. The answers' bodies are compared too: they must be identical.
If the two medians differ by more than the spread of either, the timing tells who is subscribed.

Usage: python bench/subscribe_timing.py [--samples 150] [--rounds 3]
       [--app newsletter.subscriptions.app:create_app()]
Results go to bench/results/subscribe_timing.json.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, folder: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSLETTER_")}
    env.update(NEWSLETTER_DATABASE=str(folder / "newsletter.sqlite3"),
               NEWSLETTER_OUTBOX=str(folder / "outbox"), NEWSLETTER_RATE_LIMIT="100000/minute",
               PYTHONPATH=str(ROOT))  # fmt: skip
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--no-control-socket", "--bind", f"127.0.0.1:{port}",
         "--workers", "1",
         "--log-level", "warning", app], cwd=ROOT, env=env,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            request("GET", port, "/healthz")
            return process, port
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("gunicorn did not start")


def request(method: str, port: int, path: str, body: bytes = b"") -> tuple[float, int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
    started = time.perf_counter()
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    data = response.read()
    elapsed = time.perf_counter() - started
    connection.close()
    return elapsed, response.status, data


def confirm_all(database: Path) -> None:
    db = sqlite3.connect(database, timeout=30)
    db.execute("UPDATE subscribers SET status = 'confirmed'")
    db.commit()
    db.close()


def spread(values: list[float]) -> tuple[float, float, float]:
    q1, median, q3 = statistics.quantiles(values, n=4)
    return median * 1000, q1 * 1000, q3 * 1000


def one_round(app: str, samples: int, known: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        process, port = start(app, folder)
        try:
            for n in range(known):  # subscribe them through the form, then confirm them all
                request("POST", port, "/subscribe", f"email=known{n}%40example.com".encode())
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:  # the sender applies the requests
                db = sqlite3.connect(folder / "newsletter.sqlite3", timeout=30)
                count = db.execute("SELECT count(*) FROM subscribers").fetchone()[0]
                db.close()
                if count >= known:
                    break
                time.sleep(0.2)
            confirm_all(folder / "newsletter.sqlite3")
            time.sleep(1)
            times = {"new": [], "known": []}
            bodies = {"new": set(), "known": set()}
            for n in range(samples):
                for kind, address in (("new", f"new{n}"), ("known", f"known{n % known}")):
                    elapsed, status, data = request(
                        "POST", port, "/subscribe", f"email={address}%40example.com".encode()
                    )
                    assert status == 200, (status, data)
                    times[kind].append(elapsed)
                    bodies[kind].add(data)
        finally:
            process.terminate()
            process.wait(10)
    result = {kind: spread(values) for kind, values in times.items()}
    result["same_body"] = bodies["new"] == bodies["known"] and len(bodies["new"]) == 1
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=150)
    parser.add_argument("--known", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--app", default="newsletter.subscriptions.app:create_app()")
    args = parser.parse_args()
    rounds = []
    for number in range(1, args.rounds + 1):
        result = one_round(args.app, args.samples, args.known)
        rounds.append(result)
        (nm, nq1, nq3), (km, kq1, kq3) = result["new"], result["known"]
        print(f"round {number}: new {nm:.2f} ms (IQR {nq1:.2f}-{nq3:.2f}) | known {km:.2f} ms "
              f"(IQR {kq1:.2f}-{kq3:.2f}) | difference {nm - km:+.2f} ms | same body: "
              f"{result['same_body']}", flush=True)  # fmt: skip
    out = ROOT / "bench" / "results" / "subscribe_timing.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"when": datetime.now(UTC).isoformat(), "app": args.app,
                               "samples": args.samples, "rounds": rounds}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
