"""The reader's preferences page: what it shows, and what its POSTs may change.

The page is opened from the link in every email's footer (`emails.preferences_url`: a signed
token of the reader's public id, no login). Contract:
- `Preferences(settings, database)`:
  - `reader(public_id)`: the `Subscriber`, or None (forgotten). Only a `confirmed` reader gets
    the page; the views show the others a way back (`Status`: unsubscribed, bounced, complained:
    the "Stay tuned" form; unconfirmed: the confirmation email).
  - `view(subscriber)`: a `View` of what the page shows: the address, the topics as checkboxes
    (the blog's, `topics.available`, in the author's order, plus any the reader chose that the
    blog no longer lists), which are ticked, the frequency, and a pending change of address
    (while its link still works).
  - `choose(subscriber, topics, frequency)`: the form's values (`topics` repeated, after the
    form's empty marker; `frequency` "each" or "weekly") stored through `Choices.set`, the one
    way to change them (it keeps a switch's promise: nothing lost, nothing twice). Bad values
    raise `PreferenceError` with a sentence for the reader, and nothing is stored.
  - `move(subscriber, raw)`: a change of address asked (`addresses.normalize`, else
    `addresses.InvalidAddress`); `address_changes.Requested`. Whether the new address is on the
    list is never told here: the email to that address says so, to its owner.
"""

from __future__ import annotations

from dataclasses import dataclass

from newsletter.database import Database
from newsletter.settings import Settings
from newsletter.subscriptions import addresses, topics
from newsletter.subscriptions.address_changes import AddressChanges, Pending, Requested
from newsletter.subscriptions.choices import Choice, Choices
from newsletter.subscriptions.subscribers import Subscriber, Subscribers

FREQUENCIES = ("each", "weekly")


class PreferenceError(ValueError):
    """A value the page cannot store; str() says why, for the reader."""


@dataclass(frozen=True)
class Box:
    """One topic's checkbox."""

    slug: str
    name: str
    checked: bool


@dataclass(frozen=True)
class View:
    email: str
    boxes: list[Box]
    everything: bool  # no topic chosen: everything, topics that appear later included
    frequency: str
    pending: Pending | None
    known: bool  # the blog's topics could be read (else only the reader's own are shown)


class Preferences:
    def __init__(self, settings: Settings, database: Database):
        self.settings, self.database = settings, database
        self.subscribers = Subscribers(database)
        self.choices = Choices(database)
        self.changes = AddressChanges(database)

    def reader(self, public_id: str) -> Subscriber | None:
        return self.subscribers.get(public_id)

    def view(self, subscriber: Subscriber) -> View:
        choice = self.choices.get(subscriber.id)
        offered = topics.available(self.settings)
        chosen = choice.topics
        boxes = [Box(t.slug, t.name, chosen is None or t.slug in chosen) for t in offered]
        known = {t.slug for t in offered}
        boxes += [Box(slug, slug, True) for slug in sorted(chosen or ()) if slug not in known]
        pending = self.changes.pending(subscriber.id)
        if not self.changes.live(pending, self.settings.endpoint.confirm_max_age):
            pending = None
        return View(
            subscriber.email, boxes, chosen is None, choice.frequency, pending, bool(offered)
        )

    def choose(self, subscriber: Subscriber, values: list[str], frequency: object) -> Choice:
        if not isinstance(frequency, str) or frequency.strip() not in FREQUENCIES:
            raise PreferenceError("Choose how often: each new article, or a weekly digest.")
        offered = topics.available(self.settings)
        current = self.choices.get(subscriber.id).topics
        if not values and not offered and current is None:
            chosen = None  # the blog's topics are unknown just now: the page offered none
        elif not values:
            raise PreferenceError("Choose at least one topic (all of them: everything).")
        else:
            stale = [topics.Topic(s, s) for s in sorted(current or ()) if s not in
                     {t.slug for t in offered}]  # fmt: skip
            # Unknown topics ([]): only the shape of a slug is checked, and all ticked is not
            # "everything" (the reader saw only their own).
            try:
                chosen = topics.from_form(values, offered + stale if offered else [])
            except topics.TopicError as problem:
                raise PreferenceError(_sentence(str(problem))) from None
        choice = Choice(chosen, frequency.strip())
        self.choices.set(subscriber.id, choice, self.database.now())
        return choice

    def move(self, subscriber: Subscriber, raw: object) -> Requested:
        email, key = addresses.normalize(raw)
        return self.changes.request(subscriber.id, email, key)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


__all__ = ["FREQUENCIES", "Box", "PreferenceError", "Preferences", "View"]
