"""Rebuilds while writing: with Pelican's content cache on, only the pages a change touches are
rendered and written again.

Contract: when the settings turn Pelican's content cache on and load it (`CACHE_CONTENT` and
`LOAD_CONTENT_CACHE`, as `blog.build.build(cache=...)` does for `invoke serve`), this plugin

- on `initialized`, fingerprints what every page depends on besides the content: the settings'
  values, the theme's files, the plugins' files, Pelican's and pyromark's versions. If the
  fingerprint differs from the one kept in `CACHE_PATH`, it empties `CACHE_PATH`: a theme or
  settings change rebuilds everything, from a fresh read of every file;
- gives Pelican a writer (`get_writer`) that skips a page whose signature is the one it had when
  that page was last written, if the file is still there as it was written (same size and
  mtime). A page's signature covers what its templates can read, found by Jinja's static
  analysis of the template and every template it extends, includes or imports
  (`template_names`): every scalar argument of the page; each argument or context value the
  templates name (a list of articles by each article's metadata, URL and, without a `Summary`,
  text; `articles` also when they name `articles_page`, as Pelican paginates it); and for an
  article's or a page's own page, its HTML and metadata, its URL, its image file, the URLs of
  every file its `{filename}`, `{static}` and `{attach}` links name, and the articles its
  attributes hold (translations, neighbours a plugin adds). So an edit to the body of one article
  renders that article's page (and the feeds and the sitemap, which are written at every build);
  a title, tag or summary edit renders its page, the pages that link to it if its URL moved and
  the lists that show it; a change to a value every page reads (the menu) renders every page.
  When the templates cannot be known (an include chosen at render time) or a value is of a kind
  it cannot describe, a page follows every article's metadata and every URL instead;
- in the same process (`invoke serve` builds in one), hands Pelican the article and page
  objects of the last build that succeeded for every file whose mtime and size did not change,
  through Pelican's generator-level cache hooks: such a file is not read, made into an object or
  checked again, and where it is recorded and the static files it links are not worked out
  again. A reused object gets the new build's context (its links resolve against the new
  build's pages) and keeps what plugins added to it when it was made (cards, videos, structured
  data: plugins keep what they derive from an article on the article). An article dated in the
  future is never reused: Pelican decides its status when it makes it. The objects kept belong to
  one cache folder and one fingerprint; emptying the cache forgets them;
- keeps Jinja's compiled templates in memory from one build to the next in the same process;
- keeps the signatures in `CACHE_PATH/written-pages` after a successful build. A build stopped
  before it ends (Ctrl-C, a kill) leaves `CACHE_PATH/fingerprint` saying "unfinished", and the
  next build starts from an empty cache; after a build that raised (`blog.build` sends
  `blog.pelican_seam.build_failed`) its cache is whole and kept (`settle`).

Skipped pages are still announced with `content_written`, so the sitemap lists them. Without the
content cache (`invoke build`, `invoke publish`, tests) the plugin does nothing: those builds stay
clean and write every file. Pelican's internals it relies on (a content's HTML and link pattern,
the writer's files, the generators' cache hooks) are reached through `blog.pelican_seam` (its
writer, `page_writer`, asks `WrittenPages` before and after each page).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
import pickle
import re
import shutil
from html import unescape
from importlib.metadata import version
from urllib.parse import unquote, urlparse

from jinja2 import BytecodeCache
from jinja2 import meta as jinja_meta
from pelican import signals
from pelican.contents import Content
from pelican.urlwrappers import URLWrapper

import plugins
from blog import pelican_seam

log = logging.getLogger(__name__)
# The content fields of ours this plugin reads (the image file a page follows);
# plugins/content_check refuses undeclared ones.
METADATA_FIELDS = ("Image",)
FINGERPRINT = "fingerprint"
UNFINISHED = "unfinished"
STATE = "written-pages"
CONTENT_LISTS = ("articles", "pages")  # what list pages and menus can show
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")
_active: dict[int, WrittenPages] = {}
# What every page depends on besides the content and the theme: the plugins and the seam.
CODE = (os.path.dirname(plugins.__file__), pelican_seam.__file__)


def enabled(settings: dict) -> bool:
    return bool(settings.get("CACHE_CONTENT") and settings.get("LOAD_CONTENT_CACHE"))


def _canonical(value):
    if isinstance(value, set | frozenset):
        return sorted(map(repr, value))
    return _ADDRESS.sub("", repr(value))


def _hash_tree(digest, folder: str) -> None:
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            path = os.path.join(root, name)
            digest.update(os.path.relpath(path, folder).encode() + b"\0")
            with open(path, "rb") as handle:
                digest.update(hashlib.blake2b(handle.read(), digest_size=16).digest())


def fingerprint(settings: dict) -> str:
    """What every page depends on besides the content, as a hex digest."""
    digest = hashlib.blake2b(digest_size=16)
    values = {k: v for k, v in settings.items() if k.isupper() and not k.startswith("_")}
    digest.update(json.dumps(values, sort_keys=True, default=_canonical).encode())
    for package in ("pelican", "pyromark"):
        digest.update(f"{package}={version(package)}".encode())
    for folder in [settings.get("THEME", ""), *CODE, *settings.get("PLUGIN_PATHS", [])]:
        if folder and os.path.isdir(folder):
            _hash_tree(digest, folder)
        elif folder and os.path.isfile(folder):
            with open(folder, "rb") as handle:
                digest.update(hashlib.blake2b(handle.read(), digest_size=16).digest())
    return digest.hexdigest()


def _start(pelican) -> None:
    """Empty the cache if the theme, the settings or the plugins changed since it was filled, or
    if the last build was stopped before it ended (a cache file may be cut short)."""
    settings = pelican.settings
    if not enabled(settings):
        return
    cache = settings["CACHE_PATH"]
    current = fingerprint(settings)
    settings["_INCREMENTAL_FINGERPRINT"] = current
    kept = _read_marker(cache)
    if kept != current:
        if kept is not None:
            log.info("Theme, settings or plugins changed: rebuilding everything")
        shutil.rmtree(cache, ignore_errors=True)
    if kept != current or _reused["key"] != (cache, current):
        _reused.update(key=(cache, current), kept={})
        _TEXTS.clear()
    _reused["staged"] = {}
    _write_marker(cache, UNFINISHED)


def settle(settings: dict) -> None:
    """After a build that ended, even with an error: its cache files are whole, keep them."""
    current = settings.get("_INCREMENTAL_FINGERPRINT")
    if current and enabled(settings) and _read_marker(settings["CACHE_PATH"]) == UNFINISHED:
        _write_marker(settings["CACHE_PATH"], current)


def _read_marker(cache: str) -> str | None:
    try:
        with open(os.path.join(cache, FINGERPRINT), encoding="utf-8") as handle:
            return handle.read()
    except OSError:
        return None


def _write_marker(cache: str, text: str) -> None:
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, FINGERPRINT), "w", encoding="utf-8") as handle:
        handle.write(text)


def _value(value):
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return tuple(_value(item) for item in value)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    return str(value)  # Tag, Category, Author: their names (their URLs come from the settings)


class _Unknown(Exception):
    """A value whose signature cannot be told from its parts."""


# (template name, source) -> (the variables it reads, the templates it names): once a process.
_TEMPLATES: dict[tuple[str, str], tuple[frozenset, tuple]] = {}


def template_names(env, name: str) -> frozenset | None:
    """Every variable a template and the templates it extends, includes or imports read, by
    Jinja's static analysis (`jinja2.meta`); None if one of them is chosen at render time."""
    names: set[str] = set()
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            source = env.loader.get_source(env, current)[0]
            found = _TEMPLATES.get((current, source))
            if found is None:
                tree = env.parse(source, current)
                found = (
                    frozenset(jinja_meta.find_undeclared_variables(tree)),
                    tuple(jinja_meta.find_referenced_templates(tree)),
                )
                _TEMPLATES[(current, source)] = found
        except Exception:  # a template Jinja cannot analyse: the page follows everything
            return None
        names |= found[0]
        for referenced in found[1]:
            if referenced is None:
                return None
            todo.append(referenced)
    return frozenset(names)


# id(content) -> (content, its HTML, (digest of the HTML, the file names its links name)): an
# article reused from build to build is not scanned again while its HTML is the same object.
_TEXTS: dict[int, tuple] = {}


def _text_facts(content) -> tuple[bytes, tuple[str, ...]]:
    html = pelican_seam.html(content) or ""
    found = _TEXTS.get(id(content))
    if found is not None and found[0] is content and found[1] is html:
        return found[2]
    named = set()
    if "{" in html or "|" in html:
        for match in pelican_seam.intrasite_links(content, html):
            if match.group("what") in ("filename", "static", "attach"):
                path = urlparse(match.group("value")).path
                for variant in (path, unquote(path), unescape(path)):
                    named.add(os.path.basename(variant))
    facts = (hashlib.blake2b(html.encode(), digest_size=16).digest(), tuple(sorted(named)))
    _TEXTS[id(content)] = (content, html, facts)
    return facts


def _forget_texts(keep) -> None:
    """Keep the facts of the contents of this build only."""
    ids = {id(content) for content in keep}
    for key in [key for key in _TEXTS if key not in ids]:
        del _TEXTS[key]


class WrittenPages:
    """What Pelican's writer asks before and after each page (`blog.pelican_seam.PageWriter`):
    a page whose signature has not changed since it was written is skipped."""

    def __init__(self, settings):
        self.settings = settings
        self._state_path = os.path.join(self.settings["CACHE_PATH"], STATE)
        try:
            with open(self._state_path, "rb") as handle:
                self._kept = pickle.load(handle)
        except (OSError, pickle.PickleError, EOFError, AttributeError, ValueError):
            self._kept = {}
        self._state: dict[str, tuple] = {}
        self._meta: dict[int, tuple] = {}
        self._site: dict[str, str] = {}
        self._templates: dict[str, tuple | None] = {}
        self._listed: dict[int, bytes] = {}
        self._shared: dict[int, tuple] = {}
        self._contexts: dict[tuple, tuple] = {}
        self._by_name: dict[str, list] | None = None
        self._pending: tuple[str, str] | None = None  # (page, signature) being written
        self.written_count = self.skipped = 0
        _active[id(self.settings)] = self  # saved on `finalized`, after a build that succeeded

    # signatures ---------------------------------------------------------------------------
    def _meta_signature(self, content) -> tuple:
        key = id(content)
        if key not in self._meta:
            metadata = tuple(sorted((k, _value(v)) for k, v in content.metadata.items()))
            translations = tuple(t.url for t in getattr(content, "translations", []))
            self._meta[key] = (content.save_as, content.url, metadata, translations)
        return self._meta[key]

    def _site_signature(self, context, with_texts: bool) -> str:
        key = "lists" if with_texts else "site"
        if key not in self._site:
            digest = hashlib.blake2b(digest_size=16)
            # where every file is published: what {filename} and {static} links resolve to
            for name in ("generated_content", "static_content"):
                for path, content in sorted(context.get(name, {}).items()):
                    digest.update(f"{path}\0{getattr(content, 'url', '')}\0".encode())
            for name in CONTENT_LISTS:
                for content in context.get(name, []):
                    digest.update(repr(self._meta_signature(content)).encode())
                    if with_texts and "summary" not in content.metadata:
                        html = pelican_seam.html(content)
                        digest.update(hashlib.blake2b(html.encode()).digest())
            self._site[key] = digest.hexdigest()
        return self._site[key]

    def _names(self, template) -> tuple[frozenset, frozenset] | None:
        """(the variables its templates read, the stems of those like `articles_page`)."""
        if template.name not in self._templates:
            names = template_names(template.environment, template.name)
            stems = (
                None
                if names is None
                else frozenset(
                    name[:i] for name in names for i, c in enumerate(name) if c == "_" and i
                )
            )
            self._templates[template.name] = None if names is None else (names, stems)
        return self._templates[template.name]

    def _value_signature(self, value, depth: int = 0):
        """What a page can show of a value: an article by its metadata, URL and (without a
        Summary) text; containers and dataclasses by their items; anything else unknown."""
        if isinstance(value, str | int | float | bool | type(None)):
            return value
        if isinstance(value, Content):
            key = id(value)
            if key not in self._listed:
                text = None
                if "summary" not in value.metadata:  # its summary is cut from its text
                    html = pelican_seam.html(value) or ""
                    text = hashlib.blake2b(html.encode(), digest_size=8).digest()
                described = repr((self._meta_signature(value), text)).encode()
                self._listed[key] = hashlib.blake2b(described, digest_size=12).digest()
            return self._listed[key]
        if isinstance(value, URLWrapper):
            return (type(value).__name__, value.name, value.slug)
        if isinstance(value, datetime.date):
            return value.isoformat()
        if depth < 8:
            if isinstance(value, dict):
                return tuple(
                    (self._value_signature(k, depth + 1), self._value_signature(v, depth + 1))
                    for k, v in value.items()
                )
            if isinstance(value, list | tuple):
                return tuple(self._value_signature(item, depth + 1) for item in value)
            if isinstance(value, set | frozenset):
                return tuple(sorted(repr(self._value_signature(v, depth + 1)) for v in value))
            if dataclasses.is_dataclass(value) and not isinstance(value, type):
                return (type(value).__name__,) + tuple(
                    self._value_signature(getattr(value, field.name), depth + 1)
                    for field in dataclasses.fields(value)
                )
        raise _Unknown

    def _digest(self, value) -> str:
        """A short digest of a value's signature, once per build for a container (the context
        and the lists of articles are shared by many pages)."""
        if isinstance(value, str | int | float | bool | type(None)):
            return value
        found = self._shared.get(id(value))
        if found is None or found[0] is not value:
            text = repr(self._value_signature(value)).encode()
            found = (value, hashlib.blake2b(text, digest_size=16).hexdigest())
            self._shared[id(value)] = found
        return found[1]

    def _context_part(self, template, names, context, kwargs) -> str:
        """The context values a template reads, as one digest: once per template while they are
        the same objects (the context is shared by the pages of a generator)."""
        keys = tuple(key for key in sorted(names) if key not in kwargs and key in context)
        values = tuple(context[key] for key in keys)
        found = self._contexts.get((template.name, keys))
        if (
            found is None
            or len(found[0]) != len(values)
            or any(a is not b for a, b in zip(found[0], values, strict=True))
        ):
            described = repr([(k, self._digest(v)) for k, v in zip(keys, values, strict=True)])
            found = (values, hashlib.blake2b(described.encode(), digest_size=16).hexdigest())
            self._contexts[(template.name, keys)] = found
        return found[1]

    def _links_signature(self, content, context) -> tuple:
        """The URLs its `{filename}`, `{static}` and `{attach}` links can resolve to: those of
        every file named as a link names (a superset of Pelican's own lookup)."""
        if self._by_name is None:
            self._by_name = {}
            for kind in ("generated_content", "static_content"):
                for path, target in context.get(kind, {}).items():
                    self._by_name.setdefault(os.path.basename(path), []).append(
                        (kind, path, getattr(target, "url", None))
                    )
        by_name = self._by_name
        return tuple(
            (name, tuple(sorted(by_name.get(name, ()), key=repr)))
            for name in _text_facts(content)[1]
        )

    def _related_signature(self, content) -> tuple:
        """Other articles its attributes hold (translations, neighbours a plugin adds)."""
        related = []
        for key, value in sorted(pelican_seam.attributes(content).items()):
            if isinstance(value, Content) or (
                isinstance(value, list | tuple) and any(isinstance(v, Content) for v in value)
            ):
                items = value if isinstance(value, list | tuple) else [value]
                related.append(
                    (key, tuple(self._meta_signature(v) for v in items if isinstance(v, Content)))
                )
        return tuple(related)

    def _signature(self, name, template, context, url, relative_urls, template_name, kwargs):
        names = self._names(template)
        if names is not None:
            try:
                return self._page_signature(
                    names, name, template, context, url, relative_urls, template_name, kwargs
                )
            except _Unknown:
                pass
        return self._site_wide_signature(
            name, template, context, url, relative_urls, template_name, kwargs
        )

    def _page_signature(
        self, names, name, template, context, url, relative_urls, template_name, kwargs
    ):
        """What this page's templates read: every scalar argument; the arguments they name (or
        paginate: `articles` for `articles_page`); the context values they name; for an article
        or a page, its own metadata, text, links and related articles."""
        names, stems = names
        content = kwargs.get("article") or kwargs.get("page")
        parts = [name, template.name, template_name, url, relative_urls]
        for key, value in sorted(kwargs.items()):
            if value is content and content is not None:
                continue
            scalar = isinstance(value, str | int | float | bool | type(None))
            if scalar or key in names or key in stems:
                parts.append((key, self._digest(value)))
        parts.append(self._context_part(template, names, context, kwargs))
        if content is None:
            return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()
        parts += [
            self._meta_signature(content),
            self._links_signature(content, context),
            self._related_signature(content),
        ]
        return self._with_content(parts, content)

    def _with_content(self, parts, content) -> str:
        image = content.metadata.get("image")
        if image:
            try:
                found = os.stat(os.path.join(self.settings["PATH"], str(image)))
                parts.append((found.st_mtime_ns, found.st_size))
            except OSError:
                parts.append(None)
        parts.append(_text_facts(content)[0])
        return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()

    def _site_wide_signature(
        self, name, template, context, url, relative_urls, template_name, kwargs
    ):
        """When a template's reads cannot be known (an include chosen at render time, a value of
        unknown kind): the page follows every article's metadata and every URL."""
        content = kwargs.get("article") or kwargs.get("page")
        parts = [name, template.name, template_name, url, relative_urls]
        parts += [
            (k, _value(v))
            for k, v in sorted(kwargs.items())
            if k not in ("article", "page") and not isinstance(v, list | tuple)
        ]  # lists of articles follow from the site signature and the other arguments
        if content is not None:  # its links to other content: in the site signature
            parts += [self._meta_signature(content), self._site_signature(context, False)]
            return self._with_content(parts, content)
        parts.append(self._site_signature(context, True))
        return hashlib.blake2b(repr(parts).encode(), digest_size=16).hexdigest()

    # writing ------------------------------------------------------------------------------
    def _unchanged_files(self, name, signature):
        kept = self._kept.get(name)
        if not kept or kept[0] != signature:
            return None
        for path, mtime_ns, size in kept[1]:
            try:
                found = os.stat(path)
            except OSError:
                return None
            if (found.st_mtime_ns, found.st_size) != (mtime_ns, size):
                return None
        return kept[1]

    def unchanged(self, name, template, context, url, relative_urls, template_name, kwargs):
        """The files the page was written to, if it needs no writing again; else None."""
        signature = self._signature(
            name, template, context, url, relative_urls, template_name, kwargs
        )
        files = self._unchanged_files(name, signature)
        if files is not None:
            self.skipped += 1
            self._state[name] = self._kept[name]
            return [path for path, _, _ in files]
        self._pending = (name, signature)
        return None

    def written(self, name, paths) -> None:
        pending, self._pending = self._pending, None
        assert pending is not None and pending[0] == name, (pending, name)
        self.written_count += 1
        files = []
        for path in paths:
            found = os.stat(path)
            files.append((path, found.st_mtime_ns, found.st_size))
        self._state[name] = (pending[1], files)

    def save(self) -> None:
        os.makedirs(os.path.dirname(self._state_path), exist_ok=True)
        temporary = self._state_path + ".tmp"
        with open(temporary, "wb") as handle:
            pickle.dump(self._state, handle, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, self._state_path)
        log.info("Pages rendered: %d, unchanged and skipped: %d", self.written_count, self.skipped)


_WRITER = pelican_seam.page_writer(WrittenPages)


def _writer(pelican):
    return _WRITER if enabled(pelican.settings) else None


class _Kept:
    """An article or page from an earlier build of this process, with what Pelican derives from
    its file at every build (where it is recorded, which static files it links)."""

    __slots__ = ("stamp", "content", "location", "static_links")

    def __init__(self, stamp, content, location, static_links):
        self.stamp, self.content = stamp, content
        self.location, self.static_links = location, static_links


# (CACHE_PATH, fingerprint) -> {generator class: {source path: _Kept}}: the contents of the
# last build that succeeded in this process (`invoke serve` builds in one process).
_reused: dict = {"key": None, "kept": {}, "staged": {}}


def _stamp(path: str):
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_mtime_ns, found.st_size)


def _dated_later(content) -> bool:
    """A date still to come: Pelican made it a draft when it was created (WITH_FUTURE_DATES
    False), which must be decided again at each build."""
    date = getattr(content, "date", None)
    if date is None or content.settings.get("WITH_FUTURE_DATES", True):
        return False
    now = datetime.datetime.now(date.tzinfo) if date.tzinfo else datetime.datetime.now()
    return date > now


def _reuse_contents(generator) -> None:
    """Hand Pelican the article or page objects of the last build for the files whose mtime and
    size did not change, through its generator-level cache hooks (`get_cached_data`,
    `cache_data`): such a file is neither read, nor made into an object, nor checked again. A
    reused object gets this build's context; what plugins added to it when it was made (cards,
    videos, structured data) stays with it. Not for a file dated in the future."""
    if not enabled(generator.settings):
        return
    name = type(generator).__name__
    kept = _reused["kept"].get(name, {})
    staged = _reused["staged"].setdefault(name, {})
    reused: dict[int, _Kept] = {}
    add_source_path, add_static_links = generator.add_source_path, generator.add_static_links

    def get_cached_data(filename, default=None):
        entry = kept.get(filename)
        if entry is None or entry.stamp != _stamp(os.path.join(generator.path, filename)):
            return default
        content = entry.content
        pelican_seam.rebind(content, generator.context, generator.settings)
        staged[filename] = reused[id(content)] = entry
        return content

    def cache_data(filename, content):
        if not _dated_later(content):
            staged[filename] = _Kept(
                _stamp(os.path.join(generator.path, filename)), content, None, None
            )

    def source_path(content, static=False):
        entry = reused.get(id(content))
        if entry is None or static or entry.location is None:
            return add_source_path(content, static)
        generator.context["generated_content"][entry.location] = content

    def static_links(content):
        entry = reused.get(id(content))
        if entry is None or entry.static_links is None:
            return add_static_links(content)
        generator.context["static_links"] |= entry.static_links

    pelican_seam.replace_content_hooks(
        generator,
        get_cached_data=get_cached_data,
        cache_data=cache_data,
        add_source_path=source_path,
        add_static_links=static_links,
    )


def _record_derived(generator) -> None:
    """Where each new object is recorded and the static files it links, for its reuse."""
    for entry in _reused["staged"].get(type(generator).__name__, {}).values():
        if entry.location is None:
            entry.location = entry.content.get_relative_source_path()
            entry.static_links = frozenset(entry.content.get_static_links())


class _MemoryBytecodeCache(BytecodeCache):
    """Compiled templates kept between the builds of one process (`invoke serve`), keyed by
    Jinja by template name and source checksum: an edited template is compiled again."""

    def __init__(self):
        self.compiled: dict[str, bytes] = {}

    def load_bytecode(self, bucket):
        if bucket.key in self.compiled:
            bucket.bytecode_from_string(self.compiled[bucket.key])

    def dump_bytecode(self, bucket):
        self.compiled[bucket.key] = bucket.bytecode_to_string()


_BYTECODE = _MemoryBytecodeCache()


def _reuse_compiled_templates(generator) -> None:
    if enabled(generator.settings):
        generator.env.bytecode_cache = _BYTECODE


def _finish(pelican) -> None:
    writer = _active.pop(id(pelican.settings), None)
    if writer is not None:
        writer.save()
    if enabled(pelican.settings):
        _reused["kept"], _reused["staged"] = _reused["staged"], {}
        _forget_texts(entry.content for kept in _reused["kept"].values() for entry in kept.values())
    settle(pelican.settings)


def register():
    signals.initialized.connect(_start)
    signals.get_writer.connect(_writer)
    signals.generator_init.connect(_reuse_compiled_templates)
    signals.article_generator_init.connect(_reuse_contents)
    signals.page_generator_init.connect(_reuse_contents)
    signals.article_generator_pretaxonomy.connect(_record_derived)
    signals.page_generator_finalized.connect(_record_derived)
    signals.finalized.connect(_finish)
    pelican_seam.build_failed.connect(settle)
