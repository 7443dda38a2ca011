"""WebSub: tell the hub that the feeds changed, after `invoke publish` uploaded the site.

Contract: `hub_url(settings)` is the `WEBSUB_HUB` Pelican setting, checked: "" when it is off
(the default: no feed declares a hub and nothing is pinged), else an http(s) URL (anything else
raises `WebSubError`). `feed_urls(settings, folder)` are the public URLs of every feed the build
wrote into `folder` (plugins/feeds: the site's and each category's RSS, Atom and JSON Feed), the
site-wide ones first, then the categories' by name. `ping(hub, urls)` sends one POST per feed,
form-encoded `hub.mode=publish&hub.url=FEED` (the publish notification hubs accept:
PubSubHubbub 0.4, which the W3C WebSub Recommendation leaves to the hub), with a timeout; it
never raises: each `Ping` says whether the hub accepted (any 2xx), refused (the status and the
start of its answer) or could not be reached (then the feeds after it are not tried: they would
wait as long).
`notify(settings, folder)` does both when a hub is set (a dry run only counts the feeds) and
returns what to print.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from blog.feed_contract import TOPICS_JSON, feed_settings

TIMEOUT = (5, 15)  # seconds: to connect, then to read the hub's answer
USER_AGENT = "walkagain-publish (WebSub publisher)"


class WebSubError(Exception):
    """The WEBSUB_HUB setting is not a usable hub URL."""


@dataclass(frozen=True)
class Ping:
    feed: str
    status: int | None  # the hub's HTTP status; None when it was not reached (or not tried)
    message: str

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def hub_url(settings: dict) -> str:
    hub = (settings.get("WEBSUB_HUB") or "").strip()
    if not hub:
        return ""
    parts = urlsplit(hub)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise WebSubError(f"WEBSUB_HUB must be an http(s) URL of a hub, not {hub!r}")
    return hub


def feed_urls(settings: dict, folder: str | Path) -> list[str]:
    """The public URL of each feed file in the built `folder`, site-wide feeds first."""
    conf = feed_settings(settings)
    folder = Path(folder)
    site = [conf[key] for key in ("all_rss", "all_atom", "all_json")]
    found = [path for path in site if (folder / path).is_file()]
    categories = {
        path.relative_to(folder).as_posix()
        for key in ("category_rss", "category_atom", "category_json")
        for path in folder.glob(conf[key].format(slug="*"))
    }
    found += sorted(categories - set(found) - {TOPICS_JSON})  # the topics' list is no feed
    siteurl = settings["SITEURL"].rstrip("/")
    return [f"{siteurl}/{path}" for path in found]


def ping(hub: str, urls: list[str], *, timeout=TIMEOUT) -> list[Ping]:
    import requests

    pings: list[Ping] = []
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        for index, url in enumerate(urls):
            try:
                answer = session.post(
                    hub, data={"hub.mode": "publish", "hub.url": url}, timeout=timeout
                )
            except requests.RequestException as error:
                reason = f"{type(error).__name__}: {error}"
                pings.append(Ping(url, None, f"the hub {hub} could not be reached ({reason})"))
                pings += [
                    Ping(rest, None, "not tried: the hub could not be reached")
                    for rest in urls[index + 1 :]
                ]
                break
            if 200 <= answer.status_code < 300:
                pings.append(Ping(url, answer.status_code, f"accepted ({answer.status_code})"))
            else:
                said = " ".join(answer.text.split())[:200]
                pings.append(
                    Ping(
                        url,
                        answer.status_code,
                        f"the hub {hub} refused it: {answer.status_code} {answer.reason}"
                        + (f": {said}" if said else ""),
                    )
                )
    return pings


def report(hub: str, pings: list[Ping]) -> list[str]:
    """Lines to print: one summary, and one per feed the hub did not accept."""
    accepted = sum(ping.ok for ping in pings)
    if accepted == len(pings):
        return [f"WebSub: {hub} told of {accepted} updated feed(s)"]
    lines = [
        f"WebSub: {hub} accepted {accepted} of {len(pings)} feed(s); the site is published, "
        "but feed readers that follow the hub learn of it only when they next poll:"
    ]
    unreached = [p for p in pings if p.status is None]
    lines += [f"  {p.feed}: {p.message}" for p in pings if not p.ok and p.status is not None]
    if unreached:
        lines.append(f"  {unreached[0].feed}: {unreached[0].message}")
        if len(unreached) > 1:
            lines.append(f"  and {len(unreached) - 1} more feed(s) not tried")
    return lines


def notify(
    settings: dict, folder: str | Path, *, dry_run: bool = False, timeout=TIMEOUT
) -> tuple[bool, list[str]]:
    """Ping the hub for every feed in `folder` when WEBSUB_HUB is set: (all accepted, lines).
    A dry run sends nothing and says what it would have told."""
    hub = hub_url(settings)
    if not hub:
        return True, []
    urls = feed_urls(settings, folder)
    if not urls:
        return True, [f"WebSub: no feed in {folder}, nothing to tell {hub}"]
    if dry_run:
        return True, [f"WebSub: dry run, {hub} not told of {len(urls)} updated feed(s)"]
    pings = ping(hub, urls, timeout=timeout)
    return all(p.ok for p in pings), report(hub, pings)
