"""Exercise plans: an ```` ```exercise ```` block in Markdown becomes a card, JSON-LD and a library.

Contract: the author writes a fenced block whose language is `exercise`, one `key: value` a line:

    ```exercise
    name: Side lying leg raise
    targets: gluteus medius, hip
    steps:
      - Lay on your side.
      - Straighten your top leg.
    sets: 3
    reps: 15-20
    per week: 5
    weeks: 6
    ```

Keys (`KEYS`; case, `_` and `-` in a key do not matter): `name`, `targets` (a comma list),
`steps` (one `- step` a line below it; `*`, `1.` and `1)` work too, and an indented line goes on
with the step above), `sets` (a whole number), `reps` (a whole number or a range `15-20`),
`per week` (1 to 7) and `weeks` (a whole number) are required; `hold` (text, e.g. "30 seconds")
is optional, and stands in for `reps` in an exercise held rather than repeated; so are week
notes, `week N: text` (`week 3`, `Week_3`, `week3`), one per week, N from 1 to `weeks`. Values
are text, never YAML. Lines starting with `#` and blank lines are skipped.

Working on the rendered HTML (any Markdown engine keeps the language as
`<pre><code class="language-exercise">`), on `content_object_init`, each block of an article or
page becomes the card below, every text HTML-escaped (`card_html`); its `id` is "exercise-" and
the slug of the name, made unique in the page with -2, -3. No control is in the card (the
theme's script adds the print and calendar buttons), so feeds and emails carry only markup:

    <section class="exercise" id="exercise-NAME" aria-labelledby="exercise-NAME-name"
             data-per-week="5" data-weeks="6">
    <h3 class="exercise-name" id="exercise-NAME-name">Name</h3>
    <p class="exercise-targets"><span class="exercise-label">Targets:</span> a, b</p>
    <ol class="exercise-steps"><li>Step</li>...</ol>
    <dl class="exercise-prescription">
    <div><dt>Sets</dt><dd>3</dd></div> <div><dt>Reps</dt><dd>15–20</dd></div>
    [<div><dt>Hold</dt><dd>30 seconds</dd></div>]
    <div><dt>How often</dt><dd>5 times a week</dd></div>
    <div><dt>For how long</dt><dd>6 weeks</dd></div>
    </dl>
    [<dl class="exercise-weeks"><div><dt>Week 3</dt><dd>add a 1 kg ankle weight</dd></div>...</dl>]
    </section>

The content object also gets `exercises` (a list of plain dicts: id, name, targets, steps, the
prescription (`rows`), `notes` [(week, text)], and for an article `plan_id`, the article's Id
and the card's id: plans.py) and, for the article's JSON-LD (plugins/theme_helpers), one
schema.org `ExercisePlan` per card in `structured_data["hasPart"]`. Both are attributes of the
object, so Pelican's content cache (`invoke serve`) keeps them with the HTML.

On the article's page only (the theme's filter `exercise_page`, page.py), a published
article's card also gets the `webcal://` link to its plan's calendar feed and the "Follow this
plan by email" form (theme/templates/partials/exercise_follow.html); the feeds and the
announcement emails carry the card above, without them. On `article_writer_finalized` the
plans of the published articles are written as files (plans.py): `exercises/plans.json` (the
newsletter's contract, blog/feed_contract.py) and one RFC 5545 feed per plan,
`exercises/PLAN-ID.ics`; an article without a plan adds nothing.

A broken block (empty; a missing, unknown (with a "did you mean"), repeated or malformed field;
a week note outside the plan's weeks)
stays as it was and is reported as "path:line: exercise field 'sets': ..." with the line in
the .md file (the block is found in the source by its text), through plugins/content_check,
which fails the build before anything is written. An article or page without a block costs one
substring check.

The library: on `article_writer_finalized`, `EXERCISES_SAVE_AS` (default
`exercises/index.html`, at `EXERCISES_URL`, `exercises/`) is rendered with the theme's
`exercises.html`: every exercise of every published article (not drafts, hidden or future
ones), grouped by target (`exercise_groups`: [(target, [entries])], targets sorted, an exercise
with two targets under both), each entry linking to its card (`article.url#id`). While it
lists an exercise, the menu shows "Exercises" (after "Videos", else "Archives"); without any,
neither the entry nor the page exist. An empty `EXERCISES_SAVE_AS` turns both off. The page is
written by Pelican's writer, so the sitemap lists it and plugins/incremental renders it again
when the library's content (`exercise_library`, its digest) changes; the menu of every page
follows MENUITEMS, which is part of each page's signature there.
"""

from __future__ import annotations

import difflib
import os
import re
from html import escape, unescape

from pelican import signals
from pelican.contents import Article, Page
from pelican.utils import pelican_open, slugify

from blog import pelican_seam
from blog.listing import show_in_menu, write_listing

from . import page as page_pieces
from . import plans as plans_files

MARKER = 'class="language-exercise"'
KEYS = ("name", "targets", "steps", "sets", "reps", "hold", "per week", "weeks")
REQUIRED = ("name", "targets", "steps", "sets", "per week", "weeks")  # and reps, unless hold
LIBRARY_SAVE_AS = "exercises/index.html"
LIBRARY_URL = "exercises/"
MISSING_HINTS = {
    "steps": "'steps:' and below it one line '  - ...' per step",
    "reps": "'reps: 15-20' (or 'hold: 30 seconds' for a held position)",
}
_BLOCK = re.compile(r'<pre><code class="language-exercise">(.*?)</code></pre>', re.S)
_FENCE = re.compile(r"^(?P<lead>[ \t]*(?:>[ \t]?)*[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*exercise\b")
_ITEM = re.compile(r"^(?:[-*]|\d{1,3}[.)])(?:\s+|$)")
_REPS = re.compile(r"(\d+)(?:\s*(?:-|–|—|to)\s*(\d+))?", re.I)
_ID = re.compile(r"""\sid\s*=\s*["']?([^"'\s>]+)""")
_WEEK = re.compile(r"week ?(\d{1,3})")  # a week's note: 'week 3', 'Week_3', 'week3'
NOTE_EXAMPLE = "week 3: add a 1 kg ankle weight"
_SLUG_SUBS = [
    (r"[^\w\s-]", ""),
    (r"(?u)\A\s*", ""),
    (r"(?u)\s*\Z", ""),
    (r"[-\s]+", "-"),
]


class ExerciseProblem(ValueError):
    """A broken exercise block: `offset` is the line in the block (0: the fence line)."""

    def __init__(self, offset: int, field: str | None, message: str):
        where = f"exercise field '{field}'" if field else "exercise block"
        super().__init__(f"{where}: {message}")
        self.offset, self.field = offset, field


class ExerciseError(Exception):
    """Broken blocks, when plugins/content_check is not there to report them."""


class BrokenBlock(ValueError):
    """Every problem of one block (`problems`, ExerciseProblems in line order)."""

    def __init__(self, problems: list[ExerciseProblem]):
        self.problems = sorted(problems, key=lambda p: p.offset)
        super().__init__("; ".join(map(str, self.problems)))


# Parsing ------------------------------------------------------------------------------------
def _key(text: str) -> str:
    return " ".join(text.replace("_", " ").replace("-", " ").lower().split())


class _Parser:
    def __init__(self, text: str):
        self.problems: list[ExerciseProblem] = []
        self.fields: dict[str, tuple[int, str]] = {}  # key -> (offset, value)
        self.steps: list[str] = []
        self.suggested: set[str] = set()  # keys a "did you mean" named: not "missing" too
        self.notes: dict[int, tuple[int, str]] = {}  # week -> (offset, the note)
        self.missing: list[str] = []
        self.read(text)

    def fail(self, offset: int, field: str | None, message: str) -> None:
        self.problems.append(ExerciseProblem(offset, field, message))

    def read(self, text: str) -> None:
        in_steps = False
        for number, raw in enumerate(text.split("\n"), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            item = _ITEM.match(line)
            if item:
                step = line[item.end() :].strip()
                if not in_steps:
                    self.fail(number, "steps", f"the list item {line!r} is outside 'steps'; "
                              "write 'steps:' on the line above the first step")  # fmt: skip
                elif not step:
                    self.fail(number, "steps", "an empty step")
                else:
                    self.steps.append(step)
                continue
            if in_steps and self.steps and raw[:1] in (" ", "\t") and ":" not in line:
                self.steps[-1] += " " + line  # a long step, continued on the next line
                continue
            name, colon, value = line.partition(":")
            if not colon:
                self.fail(number, None, f"{line!r} is not 'key: value' or a '- step' under "
                          "'steps:'")  # fmt: skip
                continue
            key = _key(name)
            in_steps = key == "steps"
            week = _WEEK.fullmatch(key)
            if week or key.startswith("week "):
                self.note(number, name.strip(), week, value.strip())
            elif key not in KEYS and self.near_week(number, name.strip(), key):
                pass
            elif key not in KEYS:
                close = difflib.get_close_matches(key, KEYS, n=1, cutoff=0.6)
                hint = f'did you mean "{close[0]}"? ' if close else ""
                self.suggested.update(close)
                self.fail(number, name.strip(), f"unknown; {hint}The fields are: {', '.join(KEYS)}"
                          f", and a note for a week: 'week N: text'")  # fmt: skip
            elif key in self.fields:
                first = self.fields[key][0]
                self.fail(number, key, f"given twice (first on line {first} of the block)")
            else:
                self.fields[key] = (number, value.strip())
                if in_steps and value.strip():
                    self.fail(number, "steps", "write each step on its own line below "
                              "'steps:', starting with '- '")  # fmt: skip

    def note(self, offset: int, name: str, week: re.Match | None, value: str) -> None:
        """A week's note, `week N: text`: N checked against the plan's weeks in `parse`."""
        if week is None:
            self.fail(offset, name, "a week's note is 'week N: text', N the week's number (1 "
                      f"for the first), e.g. '{NOTE_EXAMPLE}'")  # fmt: skip
            return
        number = int(week[1])
        if number in self.notes:
            first = self.notes[number][0]
            self.fail(offset, f"week {number}", f"given twice (first on line {first} of the "
                      "block)")  # fmt: skip
        elif not value:
            self.fail(offset, f"week {number}", f"empty; e.g. '{NOTE_EXAMPLE}'")
        else:
            self.notes[number] = (offset, value)

    def near_week(self, offset: int, name: str, key: str) -> bool:
        """A misspelt week's note ('wek 3', 'weeks 3', 'week3:' is fine): True once reported."""
        found = re.fullmatch(r"([a-z]+) ?(\d+)", key)
        if not found or not difflib.get_close_matches(found[1], ["week"], n=1, cutoff=0.6):
            return False
        self.fail(offset, name, f'unknown; did you mean "week {int(found[2])}"? A week\'s note '
                  f"is 'week N: text', e.g. '{NOTE_EXAMPLE}'")  # fmt: skip
        return True

    def text(self, key: str) -> str | None:
        """A required field's value, or None (and a problem) when it is missing or empty."""
        if key not in self.fields:
            if key not in self.suggested:
                self.missing.append(key)
            return None
        offset, value = self.fields[key]
        if not value and key != "steps":
            self.fail(offset, key, "empty")
            return None
        return value

    def whole(self, key: str, low: int = 1, high: int | None = None) -> int | None:
        value = self.text(key)
        if value is None:
            return None
        if value.isascii() and value.isdigit() and low <= int(value) <= (high or 10**6):
            return int(value)
        span = f"from {low} to {high}" if high is not None else "of 1 or more"
        self.fail(self.fields[key][0], key, f"{key} must be a whole number {span}, got {value!r}")
        return None


def parse(text: str) -> dict:
    """An exercise block's text (the lines between the fences) as a plan:
    {name, targets, steps, sets, reps (low, high) or None, hold, per_week, weeks}. Raises
    BrokenBlock with every problem; their `offset` counts lines from the fence (the first line
    of the block is 1)."""
    p = _Parser(text)
    if not p.fields and not p.problems:
        needed = ", ".join(REQUIRED)
        raise BrokenBlock(
            [ExerciseProblem(0, None, f"empty; write at least {needed} and reps, one a line")]
        )
    name, targets_text = p.text("name"), p.text("targets")
    if p.text("steps") is not None and not p.steps:
        p.fail(p.fields["steps"][0], "steps", "no steps; write each step on its own line "
               "starting with '- '")  # fmt: skip
    targets = [t.strip() for t in (targets_text or "").split(",") if t.strip()]
    if targets_text is not None and not targets:
        p.fail(p.fields["targets"][0], "targets", "empty; e.g. 'gluteus medius, hip'")
    sets = p.whole("sets")
    reps = None
    if "reps" in p.fields:
        offset, value = p.fields["reps"]
        match = _REPS.fullmatch(value)
        low, high = (int(match[1]), int(match[2] or match[1])) if match else (0, 0)
        if match and 1 <= low <= high:
            reps = (low, high)
        else:
            p.fail(offset, "reps",
                   f"reps must be a whole number or a range like 15-20, got {value!r}")  # fmt: skip
    elif "hold" not in p.fields and not {"reps", "hold"} & p.suggested:
        p.missing.append("reps")
    hold = p.fields.get("hold", (0, ""))[1]
    if "hold" in p.fields and not hold:
        p.fail(p.fields["hold"][0], "hold", "empty; e.g. 'hold: 30 seconds'")
    per_week, weeks = p.whole("per week", 1, 7), p.whole("weeks")
    notes = []
    for number, (offset, note) in sorted(p.notes.items()):
        if number < 1 or (weeks is not None and number > weeks):
            span = f"week 1 to week {weeks}" if weeks else "week 1 or later"
            lasts = f"the plan lasts {weeks} week{'s' if weeks != 1 else ''} ('weeks: {weeks}')"
            p.fail(offset, f"week {number}", f"week {number} is outside the plan: "
                   f"{lasts if weeks else 'weeks start at 1'}; use {span}")  # fmt: skip
        else:
            notes.append((number, note))
    if len(p.missing) == 1:
        p.fail(0, p.missing[0], "missing; add a line " + MISSING_HINTS.get(
            p.missing[0], f"'{p.missing[0]}: ...'"))  # fmt: skip
    elif p.missing:
        names = ", ".join(f"'{key}'" for key in sorted(p.missing, key=KEYS.index))
        p.fail(0, None, f"the fields {names} are missing; add one 'field: value' line for each")
    if p.problems:
        raise BrokenBlock(p.problems)
    return {
        "name": name,
        "targets": targets,
        "steps": p.steps,
        "sets": sets,
        "reps": reps,
        "hold": hold,
        "per_week": per_week,
        "weeks": weeks,
        "notes": notes,
    }


# Rendering ----------------------------------------------------------------------------------
def how_often(per_week: int) -> str:
    return {1: "once a week", 2: "twice a week"}.get(per_week, f"{per_week} times a week")


def prescription(plan: dict) -> list[tuple[str, str]]:
    """The card's rows: (label, value), in order."""
    rows = [("Sets", str(plan["sets"]))]
    if plan["reps"]:
        low, high = plan["reps"]
        rows.append(("Reps", f"{low}\u2013{high}" if high != low else str(low)))
    if plan["hold"]:
        rows.append(("Hold", plan["hold"]))
    rows.append(("How often", how_often(plan["per_week"])))
    rows.append(("For how long", f"{plan['weeks']} week{'s' if plan['weeks'] != 1 else ''}"))
    return rows


def card_html(plan: dict, card_id: str) -> str:
    e = escape
    steps = "\n".join(f"<li>{e(step)}</li>" for step in plan["steps"])
    rows = "\n".join(
        f"<div><dt>{e(label)}</dt><dd>{e(value)}</dd></div>" for label, value in prescription(plan)
    )
    return (
        f'<section class="exercise" id="{card_id}" aria-labelledby="{card_id}-name" '
        f'data-per-week="{plan["per_week"]}" data-weeks="{plan["weeks"]}">\n'
        f'<h3 class="exercise-name" id="{card_id}-name">{e(plan["name"])}</h3>\n'
        f'<p class="exercise-targets"><span class="exercise-label">Targets:</span> '
        f"{e(', '.join(plan['targets']))}</p>\n"
        f'<ol class="exercise-steps">\n{steps}\n</ol>\n'
        f'<dl class="exercise-prescription">\n{rows}\n</dl>\n'
        f"{notes_html(plan)}"
        "</section>"
    )


def notes_html(plan: dict) -> str:
    """The week notes as a description list after the prescription ('' without any)."""
    notes = plan.get("notes") or ()
    if not notes:
        return ""
    rows = "\n".join(
        f"<div><dt>Week {week}</dt><dd>{escape(note)}</dd></div>" for week, note in notes
    )
    return f'<dl class="exercise-weeks">\n{rows}\n</dl>\n'


def json_ld(plan: dict, url: str) -> dict:
    """The plan as a schema.org ExercisePlan (a CreativeWork and a PhysicalActivity)."""
    steps = " ".join(f"{n}. {step}" for n, step in enumerate(plan["steps"], 1))
    data = {
        "@type": "ExercisePlan",
        "name": plan["name"],
        "url": url,
        "description": steps,
        "associatedAnatomy": [
            {"@type": "AnatomicalStructure", "name": target} for target in plan["targets"]
        ],
        "activityFrequency": how_often(plan["per_week"]),
        "activityDuration": f"P{plan['weeks']}W",
    }
    if plan["reps"]:
        low, high = plan["reps"]
        data["repetitions"] = (
            low
            if low == high
            else {"@type": "QuantitativeValue", "minValue": low, "maxValue": high}
        )
    extra = [f"{plan['sets']} sets"] + ([f"Hold {plan['hold']}"] if plan["hold"] else [])
    data["additionalVariable"] = extra[0] if len(extra) == 1 else extra
    return data


def card_id(name: str, taken: set[str]) -> str:
    base = "exercise-" + (slugify(name, regex_subs=_SLUG_SUBS) or "plan")
    found, n = base, 1
    while found in taken or f"{found}-name" in taken:
        n += 1
        found = f"{base}-{n}"
    taken.update((found, f"{found}-name"))
    return found


# The source: where each block starts ----------------------------------------------------------
def source_blocks(text: str) -> list[tuple[int, str]]:
    """(line of the opening fence, 1-based; the text between the fences) of each exercise block
    of a Markdown file, in order."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    found, number = [], 0
    while number < len(lines):
        opening = _FENCE.match(lines[number])
        number += 1
        if not opening:
            continue
        start, fence, lead = number, opening["fence"], len(opening["lead"])
        body = []
        while number < len(lines):
            line = lines[number]
            number += 1
            inner = re.sub(r"^[ \t]*(?:>[ \t]?)*", "", line) if ">" in opening["lead"] else line
            if inner.strip().startswith(fence) and not inner.strip().strip(fence[0]):
                break
            body.append(inner[lead:] if inner[:lead].strip() == "" else inner.lstrip())
        found.append((start, "\n".join(body)))
    return found


def _where(blocks: list[tuple[int, str]], index: int, text: str) -> int:
    """The fence line of the rendered block `index` whose text is `text`."""
    normal = text.strip()
    if index < len(blocks) and blocks[index][1].strip() == normal:
        return blocks[index][0]
    for line, body in blocks:
        if body.strip() == normal:
            return line
    return blocks[index][0] if index < len(blocks) else 1


# Signals ------------------------------------------------------------------------------------
def make_cards(content) -> None:
    if not isinstance(content, (Article, Page)):
        return
    html = pelican_seam.html(content)
    if not html or MARKER not in html:
        return  # the common case: one substring check
    settings = content.settings
    taken = set(_ID.findall(html))
    source = content.source_path
    base = settings.get("PATH", os.curdir)
    relative = os.path.relpath(source, base) if source else "?"
    blocks: list[tuple[int, str]] | None = None
    plans, problems, failed = [], [], []
    siteurl = settings.get("SITEURL", "").rstrip("/")
    url = f"{siteurl}/{content.url}" if siteurl else content.url

    def replace(match):
        nonlocal blocks
        text = unescape(match[1])
        index = len(plans) + len(failed)
        try:
            plan = parse(text)
        except BrokenBlock as broken:
            if blocks is None:
                blocks = _source(source)
            fence = _where(blocks, index, text)
            problems.extend(f"{relative}:{fence + p.offset}: {p}" for p in broken.problems)
            failed.append(index)
            return match[0]
        plan["id"] = card_id(plan["name"], taken)
        plans.append(plan)
        return card_html(plan, plan["id"])

    pelican_seam.set_html(content, _BLOCK.sub(replace, html))
    content.exercise_problems = problems
    # A plan of an article has an id (plugins/exercises/plans.py); a page's has none.
    article_id = str(content.metadata.get("id") or "").strip()
    if not isinstance(content, Article):
        article_id = ""
    content.exercises = [
        {
            **plan,
            "rows": prescription(plan),
            "plan_id": plans_files.plan_id(article_id, plan["id"]) if article_id else None,
        }
        for plan in plans
    ]  # what the library, the plans' files, the page's filter and other plugins read
    if plans:
        if not isinstance(getattr(content, "structured_data", None), dict):
            content.structured_data = {}
        parts = content.structured_data.setdefault("hasPart", [])
        parts.extend(json_ld(plan, f"{url}#{plan['id']}") for plan in plans)


def _source(path: str | None) -> list[tuple[int, str]]:
    try:
        with pelican_open(path) as text:
            return source_blocks(text)
    except (OSError, TypeError):
        return []


def _report(generator, names: tuple[str, ...]) -> None:
    """Broken blocks, as content problems: plugins/content_check fails the build with them (a
    cached article keeps its problems, so an unchanged broken file fails every build)."""
    try:
        from plugins.content_check import report
    except ImportError:  # without content_check: fail here, before anything is written
        report = None
    found = []
    for name in names:
        for content in getattr(generator, name, []) or []:
            for problem in getattr(content, "exercise_problems", ()):
                if report is None:
                    found.append(problem)
                else:
                    report(content.source_path, problem)
    if found:
        raise ExerciseError(
            f"{len(found)} exercise problem(s), nothing was written:\n  " + "\n  ".join(found)
        )


def _check_articles(generator) -> None:
    _report(generator, ("articles", "translations", "drafts", "drafts_translations",
                        "hidden_articles", "hidden_translations"))  # fmt: skip


def _check_pages(generator) -> None:
    _report(generator, ("pages", "translations", "hidden_pages", "hidden_translations",
                        "draft_pages", "draft_translations"))  # fmt: skip


def library(articles) -> list[tuple[str, list[dict]]]:
    """[(target, [entry])]: each published article's exercises under each of their targets,
    targets sorted alphabetically (case-insensitive; the first spelling met is shown), entries by
    name, then article title. An entry: name, id, url (the article's, relative), title."""
    groups: dict[str, tuple[str, list[dict]]] = {}
    for article in articles:
        for plan in getattr(article, "exercises", ()):
            entry = {
                "name": plan["name"],
                "id": plan["id"],
                "url": f"{article.url}#{plan['id']}",
                "title": str(article.title),
            }
            for target in dict.fromkeys(plan["targets"]):
                key = " ".join(target.casefold().split())
                label = target[:1].upper() + target[1:]
                groups.setdefault(key, (label, []))[1].append(entry)
    return [
        (label, sorted(entries, key=lambda e: (e["name"].casefold(), e["title"].casefold())))
        for _, (label, entries) in sorted(groups.items())
    ]


def _finalized(generator) -> None:
    """Report broken blocks; collect the library, and show "Exercises" in the menu (after
    "Videos", else "Archives", else last) when it lists at least one exercise."""
    _check_articles(generator)
    settings = generator.settings
    groups = (
        library(generator.articles) if settings.get("EXERCISES_SAVE_AS", LIBRARY_SAVE_AS) else []
    )
    generator.context["exercise_groups"] = groups
    url = settings.get("EXERCISES_URL", LIBRARY_URL)
    show_in_menu(generator.context, "Exercises", url, bool(groups), after=("Videos", "Archives"))


def write_library(generator, writer) -> None:
    groups = generator.context.get("exercise_groups", [])
    write_listing(
        generator,
        writer,
        save_as=generator.settings.get("EXERCISES_SAVE_AS", LIBRARY_SAVE_AS),
        template="exercises",
        url=generator.settings.get("EXERCISES_URL", LIBRARY_URL),
        listed=groups,
        exercise_groups=groups,
    )


def write_plans(generator, writer) -> None:
    """exercises/plans.json and each plan's .ics (plugins/exercises/plans.py)."""
    plans_files.write(generator.articles, generator.settings, generator.output_path)


def _install(generator) -> None:
    """The theme's filter `exercise_page` (plugins/exercises/page.py), on each generator's Jinja
    environment (not in JINJA_FILTERS: the settings stay picklable for the content cache)."""
    generator.env.filters["exercise_page"] = page_pieces.make_filter(generator.settings)


def register():
    signals.content_object_init.connect(make_cards)
    signals.generator_init.connect(_install)
    signals.article_generator_finalized.connect(_finalized)
    signals.page_generator_finalized.connect(_check_pages)
    signals.article_writer_finalized.connect(write_library)
    signals.article_writer_finalized.connect(write_plans)
