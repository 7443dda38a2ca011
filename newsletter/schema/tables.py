"""The schema as it is now, as SQLAlchemy Core tables: what every migrated database has, on
SQLite and on PostgreSQL (a test compares them), and the list of tables `db.copy` moves.

Contract: `metadata` holds every table, in an order where each table comes after the tables
it references (`metadata.sorted_tables`). A migration that changes the schema changes this
module in the same commit; the migrations themselves never import it (they describe each
change as it was made).
"""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()

TEXT, INT = sa.Text, sa.Integer
REAL = sa.Float().with_variant(sa.REAL(), "sqlite")  # double precision on PostgreSQL


def _pk() -> sa.Column:
    return sa.Column("id", INT, primary_key=True)


def _status(name: str, values: tuple[str, ...], **options) -> sa.CheckConstraint:
    listed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{name} IN ({listed})", **options)


SUBSCRIBER_STATUSES = ("unconfirmed", "confirmed", "unsubscribed", "bounced", "complained")
MAIL_STATUSES = ("queued", "sending", "sent", "failed", "skipped")

subscribers = sa.Table(
    "subscribers",
    metadata,
    _pk(),
    sa.Column("public_id", TEXT, nullable=False, unique=True),
    sa.Column("email", TEXT, nullable=False),
    sa.Column("email_key", TEXT, nullable=False, unique=True),
    sa.Column("status", TEXT, nullable=False, server_default="unconfirmed"),
    sa.Column("confirm_nonce", TEXT, nullable=False),
    sa.Column("created_at", TEXT, nullable=False),
    sa.Column("status_changed_at", TEXT, nullable=False),
    sa.Column("confirmation_sent_at", TEXT),
    sa.Column("confirmed_at", TEXT),
    sa.Column("unsubscribed_at", TEXT),
    sa.Column("bounced_at", TEXT),
    sa.Column("complained_at", TEXT),
    sa.Column("consent_at", TEXT),
    sa.Column("consent_source", TEXT),
    sa.Column("consent_ip_hash", TEXT),
    sa.Column("topics", TEXT),
    sa.Column("frequency", TEXT, nullable=False, server_default="each"),
    _status("status", SUBSCRIBER_STATUSES),
    _status("frequency", ("each", "weekly")),
)
sa.Index("subscribers_status", subscribers.c.status)

announcements = sa.Table(
    "announcements",
    metadata,
    _pk(),
    sa.Column("kind", TEXT, nullable=False),
    sa.Column("key", TEXT, nullable=False, unique=True),
    sa.Column("subject", TEXT, nullable=False),
    sa.Column("items", TEXT, nullable=False),
    sa.Column("created_at", TEXT, nullable=False),
    sa.Column("finished_at", TEXT),
    _status("kind", ("article", "digest")),
)

feed_items = sa.Table(
    "feed_items",
    metadata,
    _pk(),
    sa.Column("guid", TEXT, nullable=False, unique=True),
    sa.Column("link", TEXT, nullable=False),
    sa.Column("link_key", TEXT, nullable=False),
    sa.Column("title", TEXT, nullable=False),
    sa.Column("published_at", TEXT),
    sa.Column("seen_at", TEXT, nullable=False),
    sa.Column("outcome", TEXT, nullable=False),
    sa.Column("reason", TEXT),
    sa.Column("announcement_id", INT, sa.ForeignKey("announcements.id")),
    _status("outcome", ("announced", "recorded")),
)
sa.Index("feed_items_link", feed_items.c.link_key)

announce_state = sa.Table(
    "announce_state",
    metadata,
    sa.Column("key", TEXT, primary_key=True),
    sa.Column("value", TEXT, nullable=False),
)

signup_requests = sa.Table(
    "signup_requests",
    metadata,
    _pk(),
    sa.Column("email", TEXT, nullable=False),
    sa.Column("email_key", TEXT, nullable=False),
    sa.Column("source", TEXT),
    sa.Column("ip_hash", TEXT),
    sa.Column("created_at", TEXT, nullable=False),
    sa.Column("topics", TEXT),
    sa.Column("frequency", TEXT),
)

feedback_events = sa.Table(
    "feedback_events",
    metadata,
    _pk(),
    sa.Column(
        "subscriber_id", INT, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("kind", TEXT, nullable=False),
    sa.Column("provider", TEXT, nullable=False),
    sa.Column("reason", TEXT),
    sa.Column("message_id", TEXT),
    sa.Column("occurred_at", TEXT, nullable=False),
    sa.Column("received_at", TEXT, nullable=False),
    sa.Column("event_key", TEXT, unique=True),
    _status("kind", ("hard_bounce", "soft_bounce", "complaint")),
)
sa.Index(
    "feedback_events_subscriber",
    feedback_events.c.subscriber_id,
    feedback_events.c.kind,
    feedback_events.c.occurred_at,
)
sa.Index("feedback_events_time", feedback_events.c.occurred_at)

webhook_tokens = sa.Table(
    "webhook_tokens",
    metadata,
    sa.Column("token", TEXT, primary_key=True),
    sa.Column("expires_at", TEXT, nullable=False),
)
sa.Index("webhook_tokens_expiry", webhook_tokens.c.expires_at)

feedback_reviews = sa.Table(
    "feedback_reviews",
    metadata,
    _pk(),
    sa.Column("report_key", TEXT, nullable=False, unique=True),
    sa.Column("provider", TEXT, nullable=False),
    sa.Column("kind", TEXT, nullable=False),
    sa.Column("subject", TEXT),
    sa.Column("reason", TEXT),
    sa.Column("message_id", TEXT),
    sa.Column("why", TEXT, nullable=False),
    sa.Column("received_at", TEXT, nullable=False),
)
sa.Index("feedback_reviews_time", feedback_reviews.c.received_at)

feedback_review_names = sa.Table(
    "feedback_review_names",
    metadata,
    sa.Column(
        "review_id",
        INT,
        sa.ForeignKey("feedback_reviews.id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("email", TEXT, nullable=False),
    sa.Column("email_key", TEXT, nullable=False),
)
sa.Index("feedback_review_names_key", feedback_review_names.c.email_key)

rate_limits = sa.Table(
    "rate_limits",
    metadata,
    sa.Column("scope", TEXT, primary_key=True),
    sa.Column("key", sa.LargeBinary, primary_key=True),
    sa.Column("tokens", REAL, nullable=False),
    sa.Column("updated", REAL, nullable=False),
)

address_changes = sa.Table(
    "address_changes",
    metadata,
    sa.Column(
        "subscriber_id",
        INT,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("email", TEXT, nullable=False),
    sa.Column("email_key", TEXT, nullable=False),
    sa.Column("nonce", TEXT, nullable=False),
    sa.Column("requested_at", TEXT, nullable=False),
    sa.Column("mail_id", INT),
)

digests = sa.Table(
    "digests",
    metadata,
    _pk(),
    sa.Column(
        "subscriber_id", INT, sa.ForeignKey("subscribers.id", ondelete="CASCADE"), nullable=False
    ),
    sa.Column("period", TEXT, nullable=False),
    sa.Column("created_at", TEXT, nullable=False),
    sa.UniqueConstraint("subscriber_id", "period"),
)

digest_items = sa.Table(
    "digest_items",
    metadata,
    sa.Column(
        "subscriber_id",
        INT,
        sa.ForeignKey("subscribers.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column(
        "announcement_id",
        INT,
        sa.ForeignKey("announcements.id", ondelete="CASCADE"),
        primary_key=True,
        autoincrement=False,
    ),
    sa.Column("topic", TEXT, nullable=False, server_default=""),
    sa.Column("digest_id", INT, sa.ForeignKey("digests.id", ondelete="CASCADE")),
)
_owed = sa.text("digest_id IS NULL")
sa.Index(
    "digest_items_owed",
    digest_items.c.subscriber_id,
    sqlite_where=_owed,
    postgresql_where=_owed,
)
sa.Index("digest_items_digest", digest_items.c.digest_id)

digest_periods = sa.Table(
    "digest_periods",
    metadata,
    sa.Column("period", TEXT, primary_key=True),
    sa.Column("closed_at", TEXT, nullable=False),
)

plan_follows = sa.Table(
    "plan_follows",
    metadata,
    _pk(),
    sa.Column("public_id", TEXT, nullable=False, unique=True),
    sa.Column("email", TEXT, nullable=False),
    sa.Column("email_key", TEXT, nullable=False),
    sa.Column("plan_id", TEXT, nullable=False),
    sa.Column("weekday", INT, nullable=False),
    sa.Column("hour", INT, nullable=False),
    sa.Column("weeks", INT, nullable=False),
    sa.Column("status", TEXT, nullable=False, server_default="unconfirmed"),
    sa.Column("confirm_nonce", TEXT, nullable=False),
    sa.Column("created_at", TEXT, nullable=False),
    sa.Column("confirmed_at", TEXT),
    sa.Column("starts_at", TEXT),
    sa.Column("ended_at", TEXT),
    sa.Column("consent_at", TEXT),
    sa.Column("consent_source", TEXT),
    sa.Column("consent_ip_hash", TEXT),
    sa.CheckConstraint("weekday BETWEEN 0 AND 6"),
    sa.CheckConstraint("hour BETWEEN 0 AND 23"),
    sa.CheckConstraint("weeks BETWEEN 1 AND 52"),
    _status("status", ("unconfirmed", "following", "ended")),
    sa.UniqueConstraint("email_key", "plan_id"),
)
sa.Index("plan_follows_status", plan_follows.c.status, plan_follows.c.starts_at)

outgoing_mail = sa.Table(
    "outgoing_mail",
    metadata,
    _pk(),
    sa.Column("kind", TEXT, nullable=False),
    sa.Column("subscriber_id", INT, sa.ForeignKey("subscribers.id", ondelete="CASCADE")),
    sa.Column("follow_id", INT, sa.ForeignKey("plan_follows.id", ondelete="CASCADE")),
    sa.Column("about_id", INT),
    sa.Column("status", TEXT, nullable=False, server_default="queued"),
    sa.Column("attempts", INT, nullable=False, server_default="0"),
    sa.Column("created_at", TEXT, nullable=False),
    sa.Column("next_attempt_at", TEXT, nullable=False),
    sa.Column("locked_until", TEXT),
    sa.Column("updated_at", TEXT, nullable=False),
    sa.Column("sent_at", TEXT),
    sa.Column("last_error", TEXT),
    _status("status", MAIL_STATUSES),
    sa.CheckConstraint("(subscriber_id IS NULL) <> (follow_id IS NULL)"),
    sa.UniqueConstraint("about_id", "kind", "subscriber_id"),
)
_queued = sa.text("status = 'queued'")
_sending = sa.text("status = 'sending'")
sa.Index(
    "outgoing_mail_due",
    outgoing_mail.c.next_attempt_at,
    sqlite_where=_queued,
    postgresql_where=_queued,
)
sa.Index(
    "outgoing_mail_leases",
    outgoing_mail.c.locked_until,
    sqlite_where=_sending,
    postgresql_where=_sending,
)
sa.Index(  # one thing's queued emails, in id order (a pass's pages)
    "outgoing_mail_about",
    outgoing_mail.c.about_id,
    outgoing_mail.c.kind,
    outgoing_mail.c.id,
    sqlite_where=_queued,
    postgresql_where=_queued,
)
sa.Index("outgoing_mail_subscriber", outgoing_mail.c.subscriber_id)
_follows = sa.text("follow_id IS NOT NULL")
sa.Index(
    "outgoing_mail_follow",
    outgoing_mail.c.follow_id,
    outgoing_mail.c.kind,
    outgoing_mail.c.about_id,
    unique=True,
    sqlite_where=_follows,
    postgresql_where=_follows,
)

__all__ = ["metadata"]
