"""Write robots.txt at the end of a build: allow everything and point at the absolute sitemap."""

import os

from pelican import signals


def write_robots(pelican) -> None:
    siteurl = pelican.settings["SITEURL"].rstrip("/")
    text = f"User-agent: *\nAllow: /\n\nSitemap: {siteurl}/sitemap.xml\n"
    with open(os.path.join(pelican.output_path, "robots.txt"), "w", encoding="utf-8") as handle:
        handle.write(text)


def register():
    signals.finalized.connect(write_robots)
