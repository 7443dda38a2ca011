"""Leaner builds: Pelican's own list work made linear, and what a build keeps in memory trimmed.

Contract: on every build (with or without the content cache), without changing a byte of the
output,

- the tag, category and author lists (and the period archives) find their articles in O(1):
  Pelican 4.12 builds each list page's `dates` with `article in articles` over a plain list
  (2,000 articles x 20 tags: about 8 million comparisons); here those lists answer `in` from a
  set of their members' ids. Contents have no `__eq__`, so membership is identity either way;
- an article's Tag, Category and Author objects are shared: one object per (kind, name) instead
  of one per article (2,000 articles, 10,000 objects), so each slug is computed once;
- the HTML of an article or page with its links resolved (Pelican memoizes `get_content` for
  the life of the process: a second copy of every article) is dropped after each page written;
  feeds and later pages compute it again if they need it. Pelican's memoized results are all
  dropped at the start and the end of each build.

Pelican's internals it works on (its period archives, its memoized results, a Tag's identity)
are reached through `blog.pelican_seam`.
"""

from __future__ import annotations

from pelican import signals

from blog import pelican_seam

CONTENT_LISTS = (
    "articles",
    "translations",
    "hidden_articles",
    "hidden_translations",
    "drafts",
    "drafts_translations",
)


class Members(list):
    """A list that answers `in` in O(1), from a set of its members made on the first `in`.
    Contents hash and compare by identity (Pelican defines no `__eq__` for them), so the answer
    is the list's own."""

    __slots__ = ("_set",)

    def __contains__(self, item) -> bool:
        found = getattr(self, "_set", None)
        if found is None or found[0] != len(self):  # appended to since: again
            found = self._set = (len(self), frozenset(self))
        return item in found[1]


def share_url_wrappers(generator) -> None:
    """One Tag, Category, Author object per (kind, name), before Pelican groups by them."""
    shared: dict[tuple, object] = {}

    def one(wrapper):
        key = pelican_seam.url_wrapper_key(wrapper)
        return wrapper if key is None else shared.setdefault(key, wrapper)

    for name in CONTENT_LISTS:
        for content in getattr(generator, name, None) or []:
            attrs, metadata = content.__dict__, content.metadata
            for key in ("category", "author"):
                if key in attrs:
                    attrs[key] = one(attrs[key])
                if key in metadata:
                    metadata[key] = one(metadata[key])
            for key in ("tags", "authors"):
                for holder in (attrs, metadata):
                    values = holder.get(key)
                    if isinstance(values, list):
                        values[:] = [one(value) for value in values]


def index_lists(generator) -> None:
    """Tag, category and author lists as `Members` (O(1) `in`), in the generator and context."""
    generator.tags = {tag: Members(items) for tag, items in generator.tags.items()}
    generator.categories = [(cat, Members(items)) for cat, items in generator.categories]
    generator.authors = [(author, Members(items)) for author, items in generator.authors]
    context = generator.context
    if "tags" in context:
        context["tags"] = list(generator.tags.items())
    for name in ("categories", "authors"):
        if name in context:
            context[name] = getattr(generator, name)


def linear_period_archives(build, sorted_articles, articles, settings):
    """Pelican's period archives, asked for no articles (it computes each period's with
    `a in dates` over a list), then each period's articles by id."""
    archives = build(sorted_articles, [], settings)
    for periods in archives.values():
        for period in periods:
            members = {id(item) for item in period["dates"]}
            period["articles"] = [item for item in articles if id(item) in members]
    return archives


def _linear_period_archives(generator) -> None:
    pelican_seam.wrap_period_archives(generator, linear_period_archives)


def forget_resolved_html(*_args, **_kwargs) -> None:
    """Drop Pelican's memoized `get_content` results (the HTML with links resolved)."""
    pelican_seam.forget_memoized("get_content")


def forget_memoized(*_args, **_kwargs) -> None:
    """Drop everything Pelican memoized on contents (`get_content`, `get_summary`), which it
    keys by object and keeps for the life of the process: at the start and the end of a build.
    (An object reused by the next build in the same process, `invoke serve`, resolves its links
    against that build's pages.)"""
    pelican_seam.forget_memoized("get_content", "get_summary")


def register():
    signals.initialized.connect(forget_memoized)
    signals.article_generator_init.connect(_linear_period_archives)
    signals.article_generator_pretaxonomy.connect(share_url_wrappers)
    signals.article_generator_finalized.connect(index_lists)
    signals.content_written.connect(forget_resolved_html)
    signals.finalized.connect(forget_memoized)
