"""Build speed: our Pelican setup against vanilla Pelican 4.12 on the same synthetic site; our
rebuild after editing one article; the time from saving an article to its rebuilt page while
`invoke serve` runs.

What is measured:

- Cold builds of N synthetic articles (about 800 words of Markdown each: h2 headings, lists,
  internal and external links, a UUID `Id`, a `Summary`) in two corpora (`--corpus`): "light",
  5 categories, 20 tags (2-4 an article), one author, dates from 2019 about a day and a half
  apart; "heavy", as real blogs grow, 12 categories, 60 tags (3-6 an article), 6 authors (one
  article in five by two of them), dates spread over ten years (2016-2025). Generated
  deterministically (fixed seed) into a temporary folder, each in a fresh Python subprocess (no
  module state or cache leaks between runs) into an empty output folder. The clock covers the
  whole subprocess, interpreter start and imports included. "ours" is
  `blog.build.build("pelicanconf.py", PATH=..., OUTPUT_PATH=..., SITEURL=...)`: our reader
  (CommonMark on pulldown-cmark), theme and plugins, no cache, without the search index
  (`SEARCH_SAVE_AS=""`: vanilla has none; its cost is measured by bench/search_index.py).
  "vanilla" is Pelican's default theme (notmyidea), no plugins, Python-Markdown, its built-in
  feeds (all Atom/RSS, per-category Atom), the same pagination, via
  `Pelican(read_settings(None, override)).run()`. Runs alternate (ours, vanilla, ours,
  vanilla, ...); for each: wall time, CPU time (user+sys of that subprocess) and peak memory
  (its ru_maxrss, from wait4). Median and range are reported.
- Rebuild after editing one article (ours): one subprocess builds a copy of the site with the
  content cache (`build(cache=...)`, as `invoke serve` does), appends a paragraph to one article,
  and times a second build in the same process, as `invoke serve` runs it; then gives that
  article a new title (and so a new URL) and times a third.
- Save to page (ours, at the first size only): `blog.serve.serve()` (livereload and our file
  watcher, as `invoke serve` runs it) serves a copy of the site; an article is saved with a new
  paragraph and its page is fetched over HTTP every 5 ms until it shows the paragraph.

Targets, at 2,000 articles of each corpus: ours at most 0.33x vanilla's CPU time and 0.35x its
wall time; the
rebuild at most 0.25x our own cold build (CPU time); peak memory no more than vanilla's; and,
while serving 200 articles, a saved article's page rebuilt within 1 second.
Results also go to bench/results/build_speed.json.

Usage: python bench/build_speed.py --sizes 200,2000 [--corpus light,heavy] [--repeat 3] [--seed 42]
                                   [--only cold,rebuild,serve]  (what to measure; default all)
                                   [--profile 2000]  (also: cProfile's top lines of our cold build)
                                   [--profile-rebuild 2000]  (and of the rebuild after one edit)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_SIZE = 2000
TARGETS = {"cpu_ratio": 0.33, "wall_ratio": 0.35, "rebuild_ratio": 0.25, "save_to_page_s": 1.0}

CATEGORIES = ["Rehab", "Exercise", "Knees", "Hips", "Ankles"]
TAGS = [
    "knee pain", "gluteus medius", "hip", "exercise", "achilles tendon", "mobility", "balance",
    "walking", "stretching", "acupuncture", "recovery", "posture", "running", "strength",
    "pain relief", "physiotherapy", "core", "lower back", "sleep", "nutrition",
]  # fmt: skip
# The heavy corpus: more of everything a taxonomy page lists.
HEAVY_CATEGORIES = [
    "Rehab", "Exercise", "Knees", "Hips", "Ankles", "Back", "Shoulders", "Feet", "Running",
    "Acupuncture", "Recovery", "Stories",
]  # fmt: skip
HEAVY_TAGS = TAGS + [
    "hamstring", "quadriceps", "calf", "plantar fascia", "it band", "meniscus", "acl", "bursitis",
    "tendinopathy", "arthritis", "hip flexor", "piriformis", "sciatica", "neck", "shoulder",
    "rotator cuff", "wrist", "elbow", "ankle sprain", "shin splints", "foam rolling", "yoga",
    "pilates", "swimming", "cycling", "hiking", "stairs", "squats", "lunges", "bridges",
    "clamshells", "planks", "resistance band", "warm up", "cool down", "heat", "ice", "massage",
    "needles", "cupping",
]  # fmt: skip
AUTHORS = [
    "Mark Williams", "Ana Souza", "Tom Becker", "Priya Nair", "Jonas Berg", "Claire Dubois",
]  # fmt: skip
CORPORA = ("light", "heavy")
WORDS = (
    "the a your my this that knee hip ankle tendon muscle joint femur patella pelvis glute "
    "medius minimus calf hamstring quad spine back foot heel toe strength balance pain rehab "
    "walk walking run stairs squat bridge clam raise lower lift hold slowly gently daily week "
    "weeks months reps sets rest recover recovery healing load tissue fibre movement control "
    "stable stability weak weakness strong tight loose mobility range motion track tracking "
    "therapist patient exercise routine program progress progression simple direct works often "
    "overlooked important because when while after before during with without into through "
    "and but or so then also still just every each one two three side lying standing seated "
    "band mat chair wall floor step morning evening habit body mind breath focus steady"
).split()
VANILLA_CHILD = (
    "import json, sys; from pelican import Pelican; from pelican.settings import read_settings; "
    "Pelican(read_settings(None, override=json.loads(sys.argv[1]))).run()"
)
OURS_CHILD = (
    "import sys; from blog.build import build; "
    "build('pelicanconf.py', PATH=sys.argv[1], OUTPUT_PATH=sys.argv[2], SITEURL=sys.argv[3],"
    " SEARCH_SAVE_AS='')"
)


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 20))
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = f"**{words[i]}**" if rng.random() < 0.5 else f"*{words[i]}*"
    return " ".join(words).capitalize() + "."


def article(rng: random.Random, i: int, when: datetime, corpus: str = "light") -> str:
    title = " ".join(rng.choices(WORDS, k=4)).title() + f" ({i})"
    if corpus == "heavy":
        tags = ", ".join(rng.sample(HEAVY_TAGS, rng.randint(3, 6)))
        category = rng.choice(HEAVY_CATEGORIES)
        names = rng.sample(AUTHORS, 2 if rng.random() < 0.2 else 1)
        authors = [f"Authors: {', '.join(names)}" if len(names) > 1 else f"Author: {names[0]}"]
    else:  # the light corpus, as before the heavy one came (the same text for the same seed)
        tags = ", ".join(rng.sample(TAGS, rng.randint(2, 4)))
        category, authors = rng.choice(CATEGORIES), []
    head = [
        f"Title: {title}",
        f"Date: {when:%Y-%m-%d %H:%M}",
        f"Category: {category}",
        *authors,
        f"Tags: {tags}",
        f"Id: {uuid.UUID(int=rng.getrandbits(128), version=4)}",
        f"Summary: {sentence(rng)}",
    ]
    blocks = [" ".join(sentence(rng) for _ in range(5))]
    words = len(blocks[0].split())
    section = 0
    while words < 800:
        section += 1
        body = [f"## {' '.join(rng.choices(WORDS, k=3)).capitalize()} {section}"]
        for _ in range(2):
            link = (
                f"[an earlier article]({{filename}}/articles/article-{rng.randrange(i):05d}.md)"
                if i and rng.random() < 0.5
                else f"[a study](https://example.org/study/{rng.randrange(10**6)})"
            )
            body.append(" ".join(sentence(rng) for _ in range(4)) + f" See {link}.")
        marker = "-" if section % 2 else "1."
        body.append("\n".join(f"{marker} {sentence(rng)}" for _ in range(rng.randint(3, 5))))
        blocks += body
        words += sum(len(b.split()) for b in body)
    return "\n".join(head) + "\n\n" + "\n\n".join(blocks) + "\n"


def generate(content: Path, n: int, seed: int, corpus: str = "light") -> None:
    rng = random.Random(seed)
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "content/images/gluteus-medius.png", content / "images")
    (content / "pages/about.md").write_text("Title: About\n\nAbout this synthetic site.\n")
    if corpus == "heavy":  # ten years, 2016-2025, whatever N: the gaps average 10 years / N
        when, step = datetime(2016, 1, 1, 9, 0), 10 * 365 * 24 / max(n, 1)
        gaps = (max(1, int(step * 0.5)), max(1, int(step * 1.5)))
    else:
        when, gaps = datetime(2019, 1, 1, 9, 0), (12, 36)
    for i in range(n):
        when += timedelta(hours=rng.randint(*gaps))
        (content / f"articles/article-{i:05d}.md").write_text(article(rng, i, when, corpus))


def vanilla_settings(content: Path, output: Path, siteurl: str) -> dict:
    """Vanilla Pelican: default theme, no plugins, built-in feeds, our pagination and paths."""
    return dict(
        PATH=str(content), OUTPUT_PATH=str(output), SITEURL=siteurl, SITENAME="Walk Again",
        AUTHOR="Mark Williams", TIMEZONE="Europe/London", DEFAULT_PAGINATION=10,
        ARTICLE_PATHS=["articles"], PAGE_PATHS=["pages"], STATIC_PATHS=["images"],
        PLUGINS=[],  # None would load every installed namespace plugin (pelican-sitemap)
        FEED_ALL_ATOM="feeds/all.atom.xml", FEED_ALL_RSS="feeds/all.rss.xml",
        CATEGORY_FEED_ATOM="feeds/{slug}.atom.xml",
    )  # fmt: skip


REBUILD_CHILD = """
import json, sys, time
from pathlib import Path
from blog.build import build
content, output, cache, siteurl = sys.argv[1:5]
settings = dict(PATH=content, OUTPUT_PATH=output, SITEURL=siteurl, SEARCH_SAVE_AS="")
build("pelicanconf.py", cache=cache, **settings)
articles = sorted(Path(content, "articles").glob("*.md"))
article = articles[len(articles) // 2]
text = article.read_text()
article.write_text(text.replace("\\n\\n", "\\n\\nAn edited paragraph.\\n\\n", 1))
wall, cpu = time.perf_counter(), time.process_time()
build("pelicanconf.py", cache=cache, **settings)
timing = {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}
article.write_text(text.replace("Title: ", "Title: Renamed ", 1))  # a new title, a new URL
wall, cpu = time.perf_counter(), time.process_time()
build("pelicanconf.py", cache=cache, **settings)
timing.update(title_wall_s=time.perf_counter() - wall, title_cpu_s=time.process_time() - cpu)
print(json.dumps(timing))
"""
SERVE_CHILD = """
import sys
from blog.build import build
from blog.serve import serve
content, output, cache, port = sys.argv[1:5]
site = f"http://127.0.0.1:{port}"
settings = dict(PATH=content, OUTPUT_PATH=output, SITEURL=site, SEARCH_SAVE_AS="")
serve(lambda: build("pelicanconf.py", cache=cache, **settings), output=output, port=int(port),
      watched=[content])
"""


def build_in_subprocess(kind: str, content: Path, output: Path, siteurl: str) -> tuple:
    """Build the site in a fresh interpreter; return its wall time, CPU time (user+sys) and
    user time in seconds and its peak memory (maximum resident set size) in MB."""
    if kind == "ours":
        args = [OURS_CHILD, str(content), str(output), siteurl]
    else:
        args = [VANILLA_CHILD, json.dumps(vanilla_settings(content, output, siteurl))]
    with tempfile.TemporaryFile() as log:
        start = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-c", *args], cwd=ROOT, stdout=log, stderr=log)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            log.seek(0)
            raise SystemExit(f"{kind} build failed:\n{log.read().decode()[-3000:]}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_utime, usage.ru_maxrss / 1024


def summary(values: list[float]) -> dict:
    return {"median": round(statistics.median(values), 2), "min": min(values), "max": max(values)}


def measure_cold(size: int, repeat: int, content: Path, work: Path) -> dict:
    runs: dict[str, dict] = {
        k: {"wall_s": [], "cpu_s": [], "user_s": [], "peak_mb": []} for k in ("ours", "vanilla")
    }
    outputs = []
    for run in range(repeat):
        for kind, record in runs.items():
            output = work / f"out-{kind}-{size}-{run}"
            os.sync()  # the last build's files on disk: its writeback does not slow this one
            wall, cpu, user, peak = build_in_subprocess(
                kind, content, output, "http://127.0.0.1:8000"
            )
            record["wall_s"].append(round(wall, 2))
            record["cpu_s"].append(round(cpu, 2))
            record["user_s"].append(round(user, 2))
            record["peak_mb"].append(round(peak, 1))
            record["html_files"] = sum(1 for _ in output.rglob("*.html"))
            outputs.append(output)
    for output in outputs:  # deleted after the runs: deleting is disk work too (discards)
        shutil.rmtree(output)
    medians = {
        k: {m: statistics.median(v[m]) for m in ("wall_s", "cpu_s", "peak_mb")}
        for k, v in runs.items()
    }
    return {
        "runs": runs,
        "ours": {m: summary(runs["ours"][m]) for m in ("wall_s", "cpu_s", "peak_mb")},
        "vanilla": {m: summary(runs["vanilla"][m]) for m in ("wall_s", "cpu_s", "peak_mb")},
        "wall_ratio": round(medians["ours"]["wall_s"] / medians["vanilla"]["wall_s"], 3),
        "cpu_ratio": round(medians["ours"]["cpu_s"] / medians["vanilla"]["cpu_s"], 3),
        "wall_ratios": _ratios(runs, "wall_s"),
        "cpu_ratios": _ratios(runs, "cpu_s"),
        "user_ratios": _ratios(runs, "user_s"),  # without the system time of writing files
    }  # fmt: skip


def _ratios(runs: dict, measure: str) -> list[float]:
    """ours / vanilla of each pair of runs (they alternate)."""
    pairs = zip(runs["ours"][measure], runs["vanilla"][measure], strict=True)
    return [round(ours / vanilla, 3) for ours, vanilla in pairs]


def measure_rebuild(repeat: int, content: Path, work: Path) -> dict:
    runs = {"wall_s": [], "cpu_s": [], "title_wall_s": [], "title_cpu_s": []}
    for run in range(repeat):
        copy, output, cache = (
            work / f"rebuild-{run}",
            work / f"rebuild-out-{run}",
            work / f"cache-{run}",
        )
        shutil.copytree(content, copy)
        args = [REBUILD_CHILD, str(copy), str(output), str(cache), "http://127.0.0.1:8000"]
        done = subprocess.run(
            [sys.executable, "-c", *args], cwd=ROOT, capture_output=True, text=True
        )
        if done.returncode:
            raise SystemExit(f"rebuild failed:\n{done.stderr[-3000:]}")
        timing = json.loads(done.stdout.strip().splitlines()[-1])
        for measure in runs:
            runs[measure].append(round(timing[measure], 3))
        for folder in (copy, output, cache):
            shutil.rmtree(folder)
    return {"runs": runs, **{measure: summary(values) for measure, values in runs.items()}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _fetch(url: str) -> str:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.read().decode()
    except OSError:
        return ""


def measure_save_to_page(saves: int, content: Path, work: Path) -> dict:
    copy, output, cache = work / "serve-content", work / "serve-out", work / "serve-cache"
    shutil.copytree(content, copy)
    port = _free_port()
    site = f"http://127.0.0.1:{port}"
    args = [SERVE_CHILD, str(copy), str(output), str(cache), str(port)]
    with tempfile.TemporaryFile() as log:
        server = subprocess.Popen([sys.executable, "-c", *args], cwd=ROOT, stdout=log,
                                  stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        try:
            deadline = time.monotonic() + 120
            while "<html" not in _fetch(site + "/"):
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise SystemExit(f"serve did not start:\n{log.read().decode()[-3000:]}")
                time.sleep(0.1)
            source = sorted((copy / "articles").glob("*.md"))[
                len(list((copy / "articles").glob("*.md"))) // 2
            ]
            text = source.read_text()
            title = re.search(r"^Title: (.*)$", text, re.M)[1]
            page = next(
                p for p in output.rglob("index.html") if f"<h1>{title}</h1>" in p.read_text()
            )
            url = f"{site}/{page.parent.relative_to(output).as_posix()}/"
            times = []
            time.sleep(2)
            for n in range(saves):
                marker = f"Saved paragraph {n}."
                start = time.perf_counter()
                source.write_text(text.replace("\n\n", f"\n\n{marker}\n\n", 1))
                while marker not in _fetch(url):
                    if time.perf_counter() - start > 30:
                        raise SystemExit("the saved article's page was not rebuilt in 30 s")
                    time.sleep(0.005)
                times.append(round(time.perf_counter() - start, 3))
                time.sleep(1.5)  # livereload's own pause between reloads
        finally:
            os.killpg(server.pid, signal.SIGINT)
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
    return {"saves": times, "seconds": summary(times)}  # fmt: skip


PROFILE_REBUILD_CHILD = """
import cProfile, pstats, sys
from pathlib import Path
from blog.build import build
content, output, cache, stats, lines = sys.argv[1:6]
settings = dict(
    PATH=content, OUTPUT_PATH=output, SITEURL="http://127.0.0.1:8000", SEARCH_SAVE_AS=""
)
build("pelicanconf.py", cache=cache, **settings)
articles = sorted(Path(content, "articles").glob("*.md"))
article = articles[len(articles) // 2]
article.write_text(article.read_text().replace("\\n\\n", "\\n\\nAn edited paragraph.\\n\\n", 1))
cProfile.run("build('pelicanconf.py', cache=cache, **settings)", stats)
pstats.Stats(stats).sort_stats("cumulative").print_stats(int(lines))
"""


def profile(
    size: int, seed: int, work: Path, lines: int = 15, rebuild: bool = False, corpus="light"
) -> str:
    """cProfile's top lines (cumulative time) of our cold build of `size` articles, in-process;
    with `rebuild`, of the rebuild after editing one article (as measure_rebuild runs it)."""
    content = work / f"content-{corpus}-{size}"
    if not content.exists():
        generate(content, size, seed, corpus)
    if rebuild:
        copy = work / f"profile-content-{size}"
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(content, copy)
        args = [PROFILE_REBUILD_CHILD, str(copy), str(work / "profile-rebuild-out"),
                str(work / "profile-cache"), str(work / "prof-rebuild"), str(lines)]  # fmt: skip
    else:
        code = (
            "import cProfile, pstats, sys; from blog.build import build; "
            "cProfile.run(\"build('pelicanconf.py', PATH=sys.argv[1], OUTPUT_PATH=sys.argv[2], "
            "SITEURL='http://127.0.0.1:8000')\", sys.argv[3]); "
            f"pstats.Stats(sys.argv[3]).sort_stats('cumulative').print_stats({lines})"
        )
        args = [code, str(content), str(work / "profile-out"), str(work / "prof")]
    done = subprocess.run(
        [sys.executable, "-c", *args], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout[done.stdout.index("   ncalls") :].rstrip()


def verdict(ok: bool | None) -> str:
    return {None: "NOT RUN", True: "PASS", False: "FAIL"}[ok]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000", help="article counts, comma-separated")
    parser.add_argument("--corpus", default="light,heavy",
                        help="the corpora, comma-separated: light (5 categories, 20 tags, "
                        "one author), heavy (12 categories, 60 tags, 6 authors, ten "
                        "years)")  # fmt: skip
    parser.add_argument("--repeat", type=int, default=3, help="builds per setup and size")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the content")
    parser.add_argument("--saves", type=int, default=5, help="saves timed while serving")
    parser.add_argument("--profile", type=int, default=0, help="also profile a build of N")
    parser.add_argument("--profile-rebuild", type=int, default=0,
                        help="also profile the rebuild after one edit, N articles")  # fmt: skip
    parser.add_argument("--only", default="cold,rebuild,serve",
                        help="what to measure, comma-separated: cold, rebuild, serve (the rebuild "
                        "ratio needs cold)")  # fmt: skip
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",") if s.strip()]
    only = {part.strip() for part in opts.only.split(",") if part.strip()}
    unknown = only - {"cold", "rebuild", "serve"}
    if unknown:
        parser.error(f"--only: unknown {', '.join(sorted(unknown))}")
    corpora = [part.strip() for part in opts.corpus.split(",") if part.strip()]
    if not corpora or set(corpora) - set(CORPORA):
        parser.error(f"--corpus: one or more of {', '.join(CORPORA)}")

    rows = []
    serving = profiled = profiled_rebuild = None
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        work = Path(tmp)
        for corpus, size in [(corpus, size) for corpus in corpora for size in sizes]:
            content = work / f"content-{corpus}-{size}"
            generate(content, size, opts.seed, corpus)
            row: dict = {"corpus": corpus, "size": size}
            what = f"{size} articles ({corpus})"
            if "cold" in only:
                print(f"{what}: cold builds, {opts.repeat}x each setup ...", flush=True)
                row.update(measure_cold(size, opts.repeat, content, work))
            if "rebuild" in only:
                print(f"{what}: rebuilds after editing one article ...", flush=True)
                row["rebuild"] = measure_rebuild(opts.repeat, content, work)
                if "cold" in only:
                    row["rebuild_ratio"] = round(
                        row["rebuild"]["cpu_s"]["median"] / row["ours"]["cpu_s"]["median"], 3
                    )
            rows.append(row)
            if serving is None and opts.saves and "serve" in only:
                print(f"{what}: save to page while serving ...", flush=True)
                serving = {"size": size, **measure_save_to_page(opts.saves, content, work)}
        if opts.profile:
            print(f"profiling a cold build of {opts.profile} articles ...", flush=True)
            profiled = profile(opts.profile, opts.seed, work, corpus=corpora[-1])
        if opts.profile_rebuild:
            print(f"profiling a rebuild of {opts.profile_rebuild} articles ...", flush=True)
            profiled_rebuild = profile(
                opts.profile_rebuild, opts.seed, work, rebuild=True, corpus=corpora[-1]
            )

    def cell(d, unit=""):
        return f"{d['median']:.2f}{unit} ({d['min']:.2f}-{d['max']:.2f})"

    cold_rows = [r for r in rows if "ours" in r]
    rebuild_rows = [r for r in rows if "rebuild" in r]
    print("\n| corpus | articles | ours wall (s) | vanilla wall (s) | wall ratio | ours CPU (s) "
          "| vanilla CPU (s) | CPU ratio | peak MB ours / vanilla |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in cold_rows:
        o, v = r["ours"], r["vanilla"]
        print(f"| {r['corpus']} | {r['size']:,} | {cell(o['wall_s'])} | {cell(v['wall_s'])} "
              f"| {r['wall_ratio']:.2f} | {cell(o['cpu_s'])} | {cell(v['cpu_s'])} "
              f"| {r['cpu_ratio']:.2f} "
              f"| {o['peak_mb']['median']:.0f} / {v['peak_mb']['median']:.0f} |")  # fmt: skip

    def system(runs: dict) -> list[float]:
        return [round(c - u, 2) for c, u in zip(runs["cpu_s"], runs["user_s"], strict=True)]

    for r in cold_rows:
        print(f"\n{r['size']:,} articles ({r['corpus']}), per pair: CPU ratio {r['cpu_ratios']}, "
              f"user-time ratio "
              f"{r['user_ratios']}; system time (s) ours {system(r['runs']['ours'])}, "
              f"vanilla {system(r['runs']['vanilla'])}")  # fmt: skip
    print("\n| corpus | articles | rebuild after one edit, wall (s) | CPU (s) "
          "| CPU / our cold build | after a title edit, CPU (s) |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|")
    for r in rebuild_rows:
        b = r["rebuild"]
        ratio = f"{r['rebuild_ratio']:.2f}" if "rebuild_ratio" in r else "-"
        print(f"| {r['corpus']} | {r['size']:,} | {cell(b['wall_s'])} | {cell(b['cpu_s'])} "
              f"| {ratio} | {cell(b['title_cpu_s'])} |")  # fmt: skip
    if serving:
        print(f"\nsave to page while serving {serving['size']:,} articles: "
              f"{cell(serving['seconds'], ' s')} over {len(serving['saves'])} saves")  # fmt: skip
    if profiled:
        print(f"\ncProfile, cold build of {opts.profile:,} articles (cumulative):\n{profiled}")
    if profiled_rebuild:
        print(f"\ncProfile, rebuild after editing one of {opts.profile_rebuild:,} articles "
              f"(cumulative):\n{profiled_rebuild}")  # fmt: skip

    checks: dict = {}
    for corpus in corpora:  # the targets hold on each corpus
        at = next(
            (r for r in cold_rows if r["size"] == TARGET_SIZE and r["corpus"] == corpus), None
        )
        ratio_at = at and at.get("rebuild_ratio")
        checks[corpus] = {
            "cpu_ratio": None if at is None else at["cpu_ratio"] <= TARGETS["cpu_ratio"],
            "wall_ratio": None if at is None else at["wall_ratio"] <= TARGETS["wall_ratio"],
            "rebuild_ratio": None if ratio_at is None else ratio_at <= TARGETS["rebuild_ratio"],
            "peak_memory": None if at is None
            else at["ours"]["peak_mb"]["median"] <= at["vanilla"]["peak_mb"]["median"],
        }  # fmt: skip
        found = checks[corpus]
        print(f"\nat {TARGET_SIZE:,} articles ({corpus}): CPU at most {TARGETS['cpu_ratio']}x "
              f"vanilla: {verdict(found['cpu_ratio'])}; wall at most {TARGETS['wall_ratio']}x: "
              f"{verdict(found['wall_ratio'])}; rebuild at most {TARGETS['rebuild_ratio']}x our "
              f"cold build: {verdict(found['rebuild_ratio'])}; peak memory at most vanilla's: "
              f"{verdict(found['peak_memory'])}")  # fmt: skip
    checks["save_to_page_s"] = (
        None if serving is None else serving["seconds"]["median"] <= TARGETS["save_to_page_s"]
    )
    print(
        f"save to page under {TARGETS['save_to_page_s']:.0f} s: {verdict(checks['save_to_page_s'])}"
    )

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "date": date.today().isoformat(),
        "machine": {
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "load_average": os.getloadavg(),
        },  # fmt: skip
        "python": platform.python_version(),
        "repeat": opts.repeat,
        "seed": opts.seed,
        "corpora": corpora,
        "results": rows,
        "save_to_page": serving,
        "profile": profiled,
        "profile_rebuild": profiled_rebuild,
        "targets": TARGETS,
        "pass": checks,
    }
    (RESULTS / "build_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0  # a missed target is reported, not an error: `invoke bench` still runs page_weight


if __name__ == "__main__":
    sys.exit(main())
