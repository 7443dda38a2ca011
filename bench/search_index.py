"""Search: what Pagefind's index weighs and what it adds to a build, on the synthetic corpus of
build_speed.py (N articles of about 800 words, fixed seed).

What is measured: cold builds of the corpus, each in a fresh subprocess into an empty folder
(`blog.build.build("pelicanconf.py", ...)`, as build_speed.py's "ours"), alternating a build
with search (the default: the /search/ page, and Pagefind indexing the output at the end) and
one without (`SEARCH_SAVE_AS=""`: no page, no index). The clock covers the whole subprocess;
CPU time is user+sys of the build and of Pagefind (wait4 counts the children it waited for).
Then the index itself, `output/pagefind/`: its files and bytes as written and gzipped (level 6,
what a gzip-serving host sends; Pagefind's index and fragment files are gzipped already), and
what a reader's first query downloads (one search for a word of the corpus in headless
Chromium: every response under /pagefind/, as served, uncompressed).

Usage: python bench/search_index.py [--size 2000] [--repeat 3] [--seed 42] [--query knee]
Results also go to bench/results/search_index.json.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from build_speed import RESULTS, ROOT, _free_port, generate  # noqa: E402

sys.path.insert(0, str(ROOT))
from blog.search import weigh  # noqa: E402

CHILD = (
    "import sys; from blog.build import build; "
    "build('pelicanconf.py', PATH=sys.argv[1], OUTPUT_PATH=sys.argv[2], "
    "SITEURL=sys.argv[4], **({} if sys.argv[3] == 'on' else {'SEARCH_SAVE_AS': ''}))"
)


def timed_build(content: Path, output: Path, search: bool, siteurl: str) -> tuple[float, float]:
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                str(content),
                str(output),
                "on" if search else "off",
                siteurl,
            ],  # fmt: skip
            cwd=ROOT,
            stdout=log,
            stderr=log,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            log.seek(0)
            raise SystemExit(f"build failed:\n{log.read().decode()[-3000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def first_query(output: Path, query: str, port: int) -> list[dict]:
    """What one search downloads from /pagefind/, in headless Chromium."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    from playwright.sync_api import sync_playwright

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(Quiet, directory=str(output))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    seen = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            page = browser.new_page()
            page.on("response", lambda r: seen.append(r))
            page.goto(f"http://127.0.0.1:{port}/search/", wait_until="networkidle")
            page.locator(".pagefind-ui__search-input").fill(query)
            page.wait_for_selector(".pagefind-ui__result-link", timeout=30_000)
            page.wait_for_load_state("networkidle")
            records = []
            for response in seen:
                path = response.url.split(f"127.0.0.1:{port}", 1)[1]
                if path.startswith("/pagefind/"):
                    body = response.body()
                    records.append(
                        {"path": path, "bytes": len(body), "gzip": len(gzip.compress(body, 6))}
                    )
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return records


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--query", default="knee")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        work = Path(tmp)
        content = work / "content"
        generate(content, args.size, args.seed)
        port = _free_port()
        siteurl = f"http://127.0.0.1:{port}"
        runs = {"on": {"wall_s": [], "cpu_s": []}, "off": {"wall_s": [], "cpu_s": []}}
        for run in range(args.repeat):
            for kind in ("on", "off"):
                os.sync()
                output = work / f"out-{kind}-{run}"
                wall, cpu = timed_build(content, output, kind == "on", siteurl)
                runs[kind]["wall_s"].append(round(wall, 2))
                runs[kind]["cpu_s"].append(round(cpu, 2))
        output = work / "out-on-0"
        bundle = weigh(output / "pagefind")
        query = first_query(output, args.query, port)
    med = {k: {m: statistics.median(v) for m, v in r.items()} for k, r in runs.items()}
    result = {
        "size": args.size,
        "runs": runs,
        "extra_wall_s": round(med["on"]["wall_s"] - med["off"]["wall_s"], 2),
        "extra_cpu_s": round(med["on"]["cpu_s"] - med["off"]["cpu_s"], 2),
        "index": {"files": bundle.files, "bytes": bundle.bytes, "gzipped": bundle.gzipped},
        "first_query": {
            "query": args.query,
            "requests": len(query),
            "bytes": sum(r["bytes"] for r in query),
            "gzip": sum(r["gzip"] for r in query),
            "responses": query,
        },
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "search_index.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{args.size} articles, {args.repeat} builds each (median, range):")
    for kind, label in (("off", "without search"), ("on", "with search")):
        r = runs[kind]
        print(
            f"  {label:15} wall {med[kind]['wall_s']:.2f} s {r['wall_s']}, "
            f"CPU {med[kind]['cpu_s']:.2f} s {r['cpu_s']}"
        )
    print(f"  search adds     wall {result['extra_wall_s']} s, CPU {result['extra_cpu_s']} s")
    print(f"index: {bundle.files} files, {bundle.bytes:,} bytes, {bundle.gzipped:,} bytes gzipped")
    fq = result["first_query"]
    print(
        f"first query ({args.query!r}): {fq['requests']} requests, "
        f"{fq['bytes']:,} bytes, {fq['gzip']:,} gzipped"
    )
    for r in query:
        print(f"  {r['bytes']:>9,} {r['gzip']:>9,}  {r['path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
