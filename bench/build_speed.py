"""Build speed: our Pelican setup against vanilla Pelican 4.12 on the same synthetic site.

What is measured: the wall time of a full build of N synthetic articles (about 800 words of
Markdown each: h2 headings, lists, internal and external links, 5 categories, 20 tags, a UUID
`Id`), generated deterministically (fixed seed) into a temporary folder.

- "ours": `blog.build.build("pelicanconf.py", PATH=..., OUTPUT_PATH=..., SITEURL=...)`, i.e. our
  theme and plugins (content_check, theme_helpers, feeds, robots, sitemap).
- "vanilla": Pelican's default theme (notmyidea), no plugins, its built-in feeds (all Atom/RSS,
  per-category Atom), the same pagination, via `Pelican(read_settings(None, override)).run()`.

Each build runs in a fresh Python subprocess (so no module state or cache leaks between runs)
into an empty output folder; the timer covers the whole subprocess, interpreter start and imports
included. Each build is repeated (default 3 times, ours and vanilla alternating) and the median is
reported; the median CPU time (user+sys of the subprocess) is reported too, as it is less affected
by a noisy machine. Target: ours at most 1.15x vanilla (wall time) at 2,000 articles.
Results also go to bench/results/build_speed.json.

Usage: python bench/build_speed.py --sizes 200,2000 [--repeat 3] [--seed 42]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
TARGET_RATIO, TARGET_SIZE = 1.15, 2000

CATEGORIES = ["Rehab", "Exercise", "Knees", "Hips", "Ankles"]
TAGS = [
    "knee pain", "gluteus medius", "hip", "exercise", "achilles tendon", "mobility", "balance",
    "walking", "stretching", "acupuncture", "recovery", "posture", "running", "strength",
    "pain relief", "physiotherapy", "core", "lower back", "sleep", "nutrition",
]  # fmt: skip
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
    "build('pelicanconf.py', PATH=sys.argv[1], OUTPUT_PATH=sys.argv[2], SITEURL=sys.argv[3])"
)


def sentence(rng: random.Random) -> str:
    words = rng.choices(WORDS, k=rng.randint(8, 20))
    if rng.random() < 0.3:
        i = rng.randrange(len(words))
        words[i] = f"**{words[i]}**" if rng.random() < 0.5 else f"*{words[i]}*"
    return " ".join(words).capitalize() + "."


def article(rng: random.Random, i: int, when: datetime) -> str:
    title = " ".join(rng.choices(WORDS, k=4)).title() + f" ({i})"
    tags = ", ".join(rng.sample(TAGS, rng.randint(2, 4)))
    head = [
        f"Title: {title}",
        f"Date: {when:%Y-%m-%d %H:%M}",
        f"Category: {rng.choice(CATEGORIES)}",
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


def generate(content: Path, n: int, seed: int) -> None:
    rng = random.Random(seed)
    for sub in ("articles", "pages", "images"):
        (content / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "content/images/gluteus-medius.png", content / "images")
    (content / "pages/about.md").write_text("Title: About\n\nAbout this synthetic site.\n")
    when = datetime(2019, 1, 1, 9, 0)
    for i in range(n):
        when += timedelta(hours=rng.randint(12, 36))
        (content / f"articles/article-{i:05d}.md").write_text(article(rng, i, when))


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


def build_in_subprocess(kind: str, content: Path, output: Path, siteurl: str) -> tuple:
    """Build the site in a fresh interpreter; return its (wall, CPU user+sys) time in seconds."""
    if kind == "ours":
        args = [OURS_CHILD, str(content), str(output), siteurl]
    else:
        args = [VANILLA_CHILD, json.dumps(vanilla_settings(content, output, siteurl))]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run([sys.executable, "-c", *args], cwd=ROOT, capture_output=True, text=True)
    elapsed, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode:
        raise SystemExit(f"{kind} build failed:\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def measure(size: int, repeat: int, seed: int, work: Path) -> dict:
    content = work / f"content-{size}"
    generate(content, size, seed)
    runs: dict[str, dict] = {kind: {"wall_s": [], "cpu_s": []} for kind in ("ours", "vanilla")}
    for run in range(repeat):
        for kind, record in runs.items():
            output = work / f"out-{kind}-{size}-{run}"
            wall, cpu = build_in_subprocess(kind, content, output, "http://127.0.0.1:8000")
            record["wall_s"].append(round(wall, 2))
            record["cpu_s"].append(round(cpu, 2))
            record["html_files"] = sum(1 for _ in output.rglob("*.html"))
            shutil.rmtree(output)
    ours, vanilla = (statistics.median(runs[k]["wall_s"]) for k in ("ours", "vanilla"))
    ours_cpu, vanilla_cpu = (statistics.median(runs[k]["cpu_s"]) for k in ("ours", "vanilla"))
    return {
        "size": size,
        "ours_s": ours,
        "vanilla_s": vanilla,
        "ratio": round(ours / vanilla, 2),
        "cpu_ratio": round(ours_cpu / vanilla_cpu, 2),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000", help="article counts, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="builds per setup and size")
    parser.add_argument("--seed", type=int, default=42, help="random seed for the content")
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",") if s.strip()]

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-build-") as tmp:
        for size in sizes:
            print(f"building {size} articles, {opts.repeat}x each setup ...", flush=True)
            rows.append(measure(size, opts.repeat, opts.seed, Path(tmp)))

    print("\n| articles | ours (s) | vanilla (s) | ratio | CPU ratio |")
    print("|---------:|---------:|------------:|------:|----------:|")
    for r in rows:
        cells = f"{r['ours_s']:>8.2f} | {r['vanilla_s']:>11.2f} | {r['ratio']:>5.2f}"
        print(f"| {r['size']:>8,} | {cells} | {r['cpu_ratio']:>9.2f} |")
    print("(median wall time of the runs; CPU ratio: median user+sys CPU time, less noisy)")
    at_target = next((r for r in rows if r["size"] == TARGET_SIZE), None)
    passed = None if at_target is None else at_target["ratio"] <= TARGET_RATIO
    verdict = {None: "NOT RUN", True: "PASS", False: "FAIL"}[passed]
    print(f"\nours at most {TARGET_RATIO}x vanilla at {TARGET_SIZE:,} articles: {verdict}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "date": date.today().isoformat(),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "python": platform.python_version(),
        "repeat": opts.repeat,
        "seed": opts.seed,
        "results": rows,
        "target": {"max_ratio": TARGET_RATIO, "size": TARGET_SIZE, "pass": passed},
    }
    (RESULTS / "build_speed.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0  # a missed target is reported, not an error: `invoke bench` still runs page_weight


if __name__ == "__main__":
    sys.exit(main())
