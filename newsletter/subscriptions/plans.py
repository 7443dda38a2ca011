"""The exercise plans the blog publishes, read as any client would: `exercises/plans.json`
(`blog.feed_contract.PLANS_JSON`, its schema in that module) under NEWSLETTER_SITE_URL, fetched
with `requests` and NEWSLETTER_HTTP_TIMEOUT (or a local file / URL given as `source`, for tests
and tools). Never Pelican's internals.

Contract:
- `Plans(settings, source=None)`: `.get(plan_id) -> dict | None` (the plan as plans.json has it,
  after the checks below; None when the site publishes no such plan) and `.all() -> list[dict]`
  (in the file's order). `.url` is where they are read from.
- A file that cannot be fetched (network, HTTP error, 404), is larger than `MAX_BYTES`, is not
  JSON, or is not `{"version": 1, "plans": [...]}` raises `PlansUnavailable` (a clear message
  naming the URL), never anything else: the endpoint answers 503 "try again later" with it, the
  reminders retry later. A plan in a readable file that breaks the contract (no id, weeks out of
  1..52, sessions_per_week out of 1..7, a url that is not absolute http(s), ...) is left out and
  logged; the others stay followable.
- Text from the file reaches emails and pages: it is kept as text (the templates escape it);
  ids are kept only when they are short and printable.
- A short in-process cache (`CACHE_SECONDS`, per URL, shared by every `Plans` of the process):
  a burst of form posts fetches the file once. `forget_cache()` empties it (tests).
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests

from blog import feed_contract
from newsletter.settings import Settings

log = logging.getLogger(__name__)
MAX_BYTES = 5 * 1024 * 1024
CACHE_SECONDS = 60.0
USER_AGENT = "stay-tuned-plans/1.0 (+newsletter)"
ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,199}")
MAX_WEEKS = 52

_cache: dict[str, tuple[float, list[dict]]] = {}
_cache_lock = threading.Lock()


class PlansUnavailable(Exception):
    """The published plans could not be read; the message says where and why."""


def plans_url(settings: Settings) -> str:
    """Where the site publishes its plans: PLANS_JSON under NEWSLETTER_SITE_URL."""
    return settings.core.site_url.rstrip("/") + "/" + feed_contract.PLANS_JSON


def forget_cache() -> None:
    with _cache_lock:
        _cache.clear()


class Plans:
    """The published plans, by id."""

    def __init__(
        self,
        settings: Settings,
        source: str | Path | None = None,
        *,
        cache_seconds: float = CACHE_SECONDS,
    ) -> None:
        self.settings = settings
        self.url = str(source or plans_url(settings))
        self.cache_seconds = cache_seconds

    def all(self) -> list[dict]:
        """Every followable plan, in the file's order; PlansUnavailable when unreadable."""
        now = time.monotonic()
        with _cache_lock:
            cached = _cache.get(self.url)
        if cached and now - cached[0] < self.cache_seconds:
            return list(cached[1])
        plans = self._load()
        with _cache_lock:
            _cache[self.url] = (now, plans)
        return list(plans)

    def get(self, plan_id: str) -> dict | None:
        """The plan with this id, or None; PlansUnavailable when the file cannot be read."""
        if not isinstance(plan_id, str) or not ID_PATTERN.fullmatch(plan_id):
            return None
        return next((plan for plan in self.all() if plan["id"] == plan_id), None)

    def _load(self) -> list[dict]:
        try:
            data = _read(self.url, self.settings.http.timeout)
            document = json.loads(data.decode("utf-8"))
        except Exception as problem:  # noqa: BLE001 - one clear error for the caller
            raise PlansUnavailable(
                f"the exercise plans at {self.url} could not be read: {problem}"
            ) from None
        if (
            not isinstance(document, dict)
            or document.get("version") != feed_contract.PLANS_VERSION
            or not isinstance(document.get("plans"), list)
        ):
            raise PlansUnavailable(
                f"the exercise plans at {self.url} are not version "
                f'{feed_contract.PLANS_VERSION} of plans.json ({{"version": ..., "plans": [...]}})'
            )
        plans, seen = [], set()
        for index, plan in enumerate(document["plans"]):
            problem = _problem(plan)
            if not problem and plan["id"] in seen:
                problem = "its id is listed twice"
            if problem:
                log.warning("plans.json at %s: plan %d left out: %s", self.url, index, problem)
                continue
            seen.add(plan["id"])
            plans.append(plan)
        return plans


def _problem(plan) -> str:
    """Why this plan breaks the contract, or ""."""
    if not isinstance(plan, dict):
        return "not an object"
    if not isinstance(plan.get("id"), str) or not ID_PATTERN.fullmatch(plan["id"]):
        return "no valid id"
    if not isinstance(plan.get("title"), str) or not plan["title"].strip():
        return "no title"
    if not _http_url(plan.get("url")):
        return "its url is not an absolute http(s) URL"
    for name, low, high in (("weeks", 1, MAX_WEEKS), ("sessions_per_week", 1, 7)):
        value = plan.get(name)
        if type(value) is not int or not low <= value <= high:
            return f"{name} must be a whole number from {low} to {high}"
    steps = plan.get("steps")
    if not isinstance(steps, list) or not all(isinstance(step, str) for step in steps):
        return "steps must be a list of text"
    if not isinstance(plan.get("prescription_text", ""), str):
        return "prescription_text must be text"
    notes = plan.get("week_notes", [])
    if not isinstance(notes, list) or not all(
        isinstance(n, dict) and type(n.get("week")) is int and isinstance(n.get("note"), str)
        for n in notes
    ):
        return "week_notes must be a list of {week, note}"
    return ""


def _http_url(url) -> bool:
    if not isinstance(url, str) or any(c.isspace() or ord(c) < 32 for c in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _read(where: str, timeout: float) -> bytes:
    if where.startswith(("http://", "https://")):
        with requests.get(
            where, timeout=timeout, headers={"User-Agent": USER_AGENT}, stream=True
        ) as response:
            response.raise_for_status()
            data = response.raw.read(MAX_BYTES + 1, decode_content=True)
    else:
        with open(where, "rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise ValueError(f"larger than {MAX_BYTES} bytes")
    return data


__all__ = ["CACHE_SECONDS", "Plans", "PlansUnavailable", "forget_cache", "plans_url"]
