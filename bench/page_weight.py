"""Page weight: what a browser downloads to show our article page, against vanilla Pelican.

What is measured: the real content/ is built twice, each build in a fresh subprocess (see
build_speed.py): with our setup (`blog.build.build("pelicanconf.py", ...)`: our theme and plugins)
and with vanilla Pelican 4.12 (default theme notmyidea, no plugins). Each output folder is served
by a local threaded http.server on 127.0.0.1 (port 0, no compression) and the article "The Best
Muscle to Train for Knee Pain" is loaded in headless Chromium via Playwright, then scrolled to the
bottom so lazy images load too. Every response is recorded: its resource type, its size as served
(uncompressed) and its size gzipped here at level 6 (what a gzip-serving host would send).
Document, CSS, JS and fonts are "needed to render"; images are counted apart.

The same article is measured a second time with a YouTube video in it ("ours + video"): a copy
of content/ where the line `[Title](https://youtu.be/ID) 4:12` follows the exercise's
introduction, its thumbnail (a 480x360 JPEG made here by Chromium) and its metadata already
cached in images/videos/, as a build leaves them: nothing is fetched. That page is measured
before the click on the video: the facade's thumbnail counts as an image.

Targets (for our theme; vanilla is printed for comparison): the HTML and its CSS fit in 14 KB
gzipped (14,336 bytes, the first TCP round trip) and at most 3 requests happen before images,
with and without the video; nothing is requested from another host than 127.0.0.1.
Results also go to bench/results/page_weight.json.

Usage: python bench/page_weight.py
"""

from __future__ import annotations

import argparse
import functools
import gzip
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
from datetime import date
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from build_speed import RESULTS, ROOT, build_in_subprocess
from playwright.sync_api import sync_playwright

SLUG = "the-best-muscle-to-train-for-knee-pain"
OURS_PATH = f"2026/{SLUG}/"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RENDER_TYPES = {"document", "stylesheet", "script", "font"}
MAX_HTML_CSS_GZ, MAX_REQUESTS_BEFORE_IMAGES = 14_336, 3
VIDEO_ID = "M7lc1UVf-VE"  # YouTube's own sample video
VIDEO_LINE = f"[How to do the side lying leg raise](https://youtu.be/{VIDEO_ID}) 4:12"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


def serve(folder: Path) -> tuple[ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def load(browser, url: str) -> list[dict]:
    """Load url, scroll to the end, return one record per response (and per failed request)."""
    page = browser.new_page()
    responses, failed = [], []
    page.on("response", lambda response: responses.append(response))
    page.on("requestfailed", lambda request: failed.append(request))
    page.goto(url, wait_until="networkidle")
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(500)
    records = []
    for response in responses:
        body = response.body() if response.status < 300 or response.status >= 400 else b""
        records.append(
            {
                "url": response.url,
                "type": response.request.resource_type,
                "status": response.status,
                "bytes": len(body),
                "gzip_bytes": len(gzip.compress(body, compresslevel=6)) if body else 0,
            }
        )
    for request in failed:
        records.append(
            {"url": request.url, "type": request.resource_type, "status": "failed", "bytes": 0}
        )
    page.close()
    order = ["document", "stylesheet", "script", "font", "image"]
    return sorted(records, key=lambda r: order.index(r["type"]) if r["type"] in order else 9)


def thumbnail_jpeg(browser) -> bytes:
    """A 480x360 JPEG, about the size of YouTube's hqdefault.jpg, drawn by Chromium."""
    page = browser.new_page(viewport={"width": 480, "height": 360})
    page.set_content(
        "<body style='margin:0;background:linear-gradient(135deg,#2f6f62,#e3f1ec)'>"
        "<h1 style='font:700 40px sans-serif;color:#fff;padding:120px 40px'>Side lying leg "
        "raise</h1></body>"
    )
    data = page.screenshot(type="jpeg", quality=80)
    page.close()
    return data


def content_with_video(content: Path, folder: Path, jpeg: bytes) -> Path:
    """A copy of content/ whose article embeds a video, thumbnail and metadata cached."""
    copy = folder / "content"
    shutil.copytree(content, copy)
    article = next(copy.rglob(f"{SLUG}.md"))
    lines = article.read_text(encoding="utf-8").split("\n")
    after = next((i for i, line in enumerate(lines) if line.startswith("My go-to exercise")), None)
    if after is None:  # else after the first paragraph of the text
        after = lines.index("") + 1
    lines[after + 1 : after + 1] = ["", VIDEO_LINE]
    article.write_text("\n".join(lines), encoding="utf-8")
    videos = copy / "images" / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    (videos / f"{VIDEO_ID}.jpg").write_bytes(jpeg)
    meta = {"title": "How to do the side lying leg raise", "uploadDate": "2026-11-23",
            "description": "The side lying leg raise, step by step."}  # fmt: skip
    (videos / f"{VIDEO_ID}.json").write_text(json.dumps(meta))
    return copy


def summarize(records: list[dict]) -> dict:
    render = [r for r in records if r["type"] in RENDER_TYPES]
    images = [r for r in records if r["type"] == "image"]
    html_css = [r for r in render if r["type"] in ("document", "stylesheet")]
    return {
        "requests_total": len(records),
        "requests_before_images": len(render),
        "render_bytes": sum(r["bytes"] for r in render),
        "render_gzip_bytes": sum(r.get("gzip_bytes", 0) for r in render),
        "html_css_bytes": sum(r["bytes"] for r in html_css),
        "html_css_gzip_bytes": sum(r.get("gzip_bytes", 0) for r in html_css),
        "images": len(images),
        "image_bytes": sum(r["bytes"] for r in images),
        "other_requests": len(records) - len(render) - len(images),
    }


def print_requests(theme: str, records: list[dict]) -> None:
    print(f"\n{theme}: every request")
    print(f"| {'type':<10} | {'status':>6} | {'bytes':>8} | {'gzip':>7} | path")
    print(f"|{'-' * 12}|{'-' * 8}|{'-' * 10}|{'-' * 9}|{'-' * 6}")
    for r in records:
        gz = r.get("gzip_bytes", 0)
        path = urlsplit(r["url"]).path
        print(f"| {r['type']:<10} | {r['status']:>6} | {r['bytes']:>8,} | {gz:>7,} | {path}")


def verdicts(name: str, s: dict) -> list[str]:
    fits = "PASS" if s["html_css_gzip_bytes"] <= MAX_HTML_CSS_GZ else "FAIL"
    few = "PASS" if s["requests_before_images"] <= MAX_REQUESTS_BEFORE_IMAGES else "FAIL"
    return [
        f"{name}: HTML + CSS fit in 14 KB gzipped ({MAX_HTML_CSS_GZ:,} bytes): {fits} "
        f"({s['html_css_gzip_bytes']:,} bytes)",
        f"{name}: at most {MAX_REQUESTS_BEFORE_IMAGES} requests before images: {few} "
        f"({s['requests_before_images']})",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", default=str(ROOT / "content"), help="content folder")
    opts = parser.parse_args()
    content = Path(opts.content).resolve()

    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-weight-") as tmp, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        with_video = content_with_video(content, Path(tmp), thumbnail_jpeg(browser))
        sites = {}
        for theme in ("ours", "ours + video", "vanilla"):
            output = Path(tmp) / theme.replace(" + ", "-")
            output.mkdir()
            server, url = serve(output)  # serve first: the build needs the server's URL
            print(f"building {theme} for {url} ...", flush=True)
            kind = "vanilla" if theme == "vanilla" else "ours"
            build_in_subprocess(kind, with_video if "video" in theme else content, output, url)
            path = OURS_PATH if kind == "ours" else None
            if path is None:  # vanilla's default ARTICLE_URL; take it from what was written
                found = sorted(output.rglob(f"*{SLUG}*.html"))
                path = found[0].relative_to(output).as_posix()
            if "video" in theme and VIDEO_ID not in (output / path / "index.html").read_text():
                raise SystemExit("the article with a video has no facade")
            sites[theme] = (server, f"{url}/{path}")
        for theme, (_, url) in sites.items():
            records = load(browser, url)
            results[theme] = {"url": url, "summary": summarize(records), "requests": records}
            hosts = {urlsplit(r["url"]).hostname for r in records}
            results[theme]["other_hosts"] = sorted(hosts - {"127.0.0.1"})
        browser.close()
        for server, _ in sites.values():
            server.shutdown()

    for theme, result in results.items():
        print_requests(theme, result["requests"])
    head = ["theme", "requests before images", "HTML+CSS gz", "render (raw)", "render gz"]
    head += ["images", "image bytes", "all requests"]
    print("\n| " + " | ".join(head) + " |")
    print("|" + "|".join("-" * (len(h) + 2) for h in head) + "|")
    for theme, result in results.items():
        s = result["summary"]
        cells = [theme, s["requests_before_images"], s["html_css_gzip_bytes"], s["render_bytes"]]
        cells += [s["render_gzip_bytes"], s["images"], s["image_bytes"], s["requests_total"]]
        print("| " + " | ".join(f"{c:,}" if isinstance(c, int) else c for c in cells) + " |")
    print()
    lines = [line for theme in results for line in verdicts(theme, results[theme]["summary"])]
    for theme in ("ours", "ours + video"):
        others = results[theme]["other_hosts"]
        lines.append(f"{theme}: nothing requested from another host: "
                     + (f"FAIL ({', '.join(others)})" if others else "PASS"))  # fmt: skip
    print("\n".join(lines))

    RESULTS.mkdir(parents=True, exist_ok=True)
    report = {
        "date": date.today().isoformat(),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "targets": {
            "max_html_css_gzip_bytes": MAX_HTML_CSS_GZ,
            "max_requests_before_images": MAX_REQUESTS_BEFORE_IMAGES,
        },
        "verdicts": lines,
        "themes": results,
    }
    (RESULTS / "page_weight.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
