"""The announcements' NEWSLETTER_* settings: read from the environment in config.py's one place,
and refused with the variable's name when malformed."""

from __future__ import annotations

import pytest

from newsletter.settings import ConfigError, Settings
from tests.test_newsletter_config import ANNOUNCE_ENV


def test_every_announcement_setting_is_read():
    s = Settings.from_env(ANNOUNCE_ENV)
    assert s.feed_url == "https://walkagain.example/feeds/all.rss.xml"
    assert (s.announce_mode, s.announce_max_age_days) == ("digest", 3.0)
    assert (s.announce_retries, s.announce_retry_delay) == (2, 0.5)
    assert s.reply_to == "mark@walkagain.example"
    assert s.unsubscribe_mailto == "unsubscribe@walkagain.example"
    assert (s.smtp_workers, s.smtp_rate) == (8, 50.0)
    assert (s.mailgun_api_key, s.mailgun_domain) == ("key-123", "mg.walkagain.example")
    assert s.mailgun_region == "eu" and s.mailgun_batch_size == 500
    assert s.mailgun_url == "https://mailgun-proxy.example"  # the override wins
    assert "key-123" not in repr(s)  # a secret never shows in logs


def test_defaults_run_locally():
    s = Settings()
    assert (s.transport, s.announce_mode, s.announce_max_age_days) == ("outbox", "each", 7.0)
    assert (s.smtp_workers, s.smtp_rate, s.mailgun_batch_size) == (4, 0.0, 1000)
    assert s.mailgun_url == "https://api.mailgun.net" and s.feed_url == ""


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("NEWSLETTER_ANNOUNCE_MODE", "weekly", "must be one of each, digest"),
        ("NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS", "0", "positive"),
        ("NEWSLETTER_ANNOUNCE_RETRIES", "-1", "whole number"),
        ("NEWSLETTER_SMTP_WORKERS", "0", "use 1 to 64"),
        ("NEWSLETTER_SMTP_RATE", "fast", "must be a number"),
        ("NEWSLETTER_MAILGUN_BATCH_SIZE", "2000", "at most|Mailgun's limit"),
        ("NEWSLETTER_MAILGUN_REGION", "asia", "us, eu"),
        ("NEWSLETTER_FEED_URL", "ftp://walkagain.example/feed", "http:// or https://"),
        ("NEWSLETTER_REPLY_TO", "a@b.c, evil@x.y", "plain address"),
        ("NEWSLETTER_UNSUBSCRIBE_MAILTO", "not-an-address", "plain address"),
    ],
)
def test_malformed_values_name_the_variable(name, value, words):
    with pytest.raises(ConfigError, match=f"{name}.*({words})"):
        Settings.from_env({name: value})
