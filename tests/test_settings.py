"""Newsletter settings from the environment: local defaults, clear errors, a safe production."""

import dataclasses
import runpy

import pytest

from newsletter.ratelimit import Rate
from newsletter.settings import (
    CONCERNS,
    DEFAULT_WELCOME_TEXT,
    DERIVED,
    DEV_SECRET_KEY,
    FLAT,
    ROOT,
    VARIABLES,
    AnnounceSettings,
    ConfigError,
    CoreSettings,
    EndpointSettings,
    FeedbackSettings,
    HttpSettings,
    ImapSettings,
    MailgunSettings,
    MailSettings,
    Settings,
    SmtpSettings,
    load,
)

PRODUCTION = {
    "NEWSLETTER_ENV": "production",
    "NEWSLETTER_SECRET_KEY": "s" * 48,
    "NEWSLETTER_FROM": "Walk Again <news@walkagain.example>",
    "NEWSLETTER_SITE_URL": "https://walkagain.example",
    "NEWSLETTER_BASE_URL": "https://walkagain.example/newsletter",
    "NEWSLETTER_POSTAL_ADDRESS": "Walk Again, 2 Mill Lane, Leeds LS1 1AA",
    "NEWSLETTER_PROXY_COUNT": "1",
}


def test_defaults_run_everything_locally_under_var():
    settings = Settings.from_env({})
    assert settings.env == "development"
    assert settings.database == ROOT / "var" / "newsletter.sqlite3"
    assert settings.outbox == ROOT / "var" / "outbox"
    assert settings.transport == "outbox"
    assert settings.site_url == "http://localhost:8000"
    assert settings.base_url == "http://127.0.0.1:5000"
    assert settings.site_origin == "http://localhost:8000"
    assert settings.from_address.addr_spec == "newsletter@localhost"
    assert settings.rate_limit == Rate(20, 3600)
    # The form in the development site posts to this endpoint.
    site = runpy.run_path(str(ROOT / "pelicanconf.py"))
    assert site["NEWSLETTER_URL"] == settings.base_url + "/subscribe"
    assert site["SITEURL"] == settings.site_url
    assert site["SITENAME"] == settings.site_name


# Announcements (issue 4) read these; tests/test_announce_settings.py checks their values.
ANNOUNCE_ENV = {
    "NEWSLETTER_FEED_URL": "https://walkagain.example/feeds/all.rss.xml",
    "NEWSLETTER_ANNOUNCE_MODE": "digest",
    "NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS": "3",
    "NEWSLETTER_ANNOUNCE_MAX_ITEMS": "12",
    "NEWSLETTER_ANNOUNCE_RETRIES": "2",
    "NEWSLETTER_ANNOUNCE_RETRY_DELAY": "0.5",
    "NEWSLETTER_REPLY_TO": "mark@walkagain.example",
    "NEWSLETTER_UNSUBSCRIBE_MAILTO": "unsubscribe@walkagain.example",
    "NEWSLETTER_SMTP_WORKERS": "8",
    "NEWSLETTER_SMTP_RATE": "50",
    "NEWSLETTER_MAILGUN_API_KEY": "key-123",
    "NEWSLETTER_MAILGUN_DOMAIN": "mg.walkagain.example",
    "NEWSLETTER_MAILGUN_REGION": "eu",
    "NEWSLETTER_MAILGUN_BASE_URL": "https://mailgun-proxy.example",
    "NEWSLETTER_MAILGUN_BATCH_SIZE": "500",
    "NEWSLETTER_VIDEO_FEED_URL": "https://www.youtube.com/feeds/videos.xml?channel_id=UCx",
    "NEWSLETTER_VIDEO_SKIP_SHORTS": "yes",
    "NEWSLETTER_DIGEST_WEEKDAY": "Friday",
    "NEWSLETTER_DIGEST_HOUR": "17",
}
# Provider feedback (bounces and complaints).
FEEDBACK_ENV = {
    "NEWSLETTER_SOFT_BOUNCE_LIMIT": "5",
    "NEWSLETTER_SOFT_BOUNCE_DAYS": "14",
    "NEWSLETTER_MAILGUN_WEBHOOK_KEY": "whk-secret",
    "NEWSLETTER_SES_TOPIC_ARN": "arn:aws:sns:eu-west-1:123456789012:ses-feedback",
    "NEWSLETTER_SNS_MAX_AGE": "1800",
    "NEWSLETTER_IMAP_HOST": "imap.example.net",
    "NEWSLETTER_IMAP_PORT": "1993",
    "NEWSLETTER_IMAP_USER": "bounces",
    "NEWSLETTER_IMAP_PASSWORD": "imap-secret",
    "NEWSLETTER_IMAP_FOLDER": "Bounces",
    "NEWSLETTER_IMAP_DONE_FOLDER": "Bounces/Done",
    "NEWSLETTER_VERP_DOMAIN": "bounces.walkagain.example",
}


def test_every_variable_is_read(tmp_path):
    env = {
        **PRODUCTION,
        "NEWSLETTER_DATABASE": str(tmp_path / "db.sqlite3"),
        "NEWSLETTER_TRANSPORT": "SMTP",
        "NEWSLETTER_OUTBOX": str(tmp_path / "outbox"),
        "NEWSLETTER_SMTP_HOST": "smtp.example.net",
        "NEWSLETTER_SMTP_PORT": "2525",
        "NEWSLETTER_SMTP_SECURITY": "ssl",
        "NEWSLETTER_SMTP_USER": "mark",
        "NEWSLETTER_SMTP_PASSWORD": "hunter2",
        "NEWSLETTER_SMTP_TIMEOUT": "2.5",
        "NEWSLETTER_HTTP_TIMEOUT": "4",
        "NEWSLETTER_SITE_NAME": "Walk Again!",
        "NEWSLETTER_RATE_LIMIT": "30/10m",
        "NEWSLETTER_PROXY_COUNT": "1",
        "NEWSLETTER_RETRY_DELAY": "0.5",
        "NEWSLETTER_MAX_ATTEMPTS": "3",
        "NEWSLETTER_URL": "https://walkagain.example/newsletter/subscribe",  # the site's own
        "NEWSLETTER_WELCOME_TEXT": "Hello.\n\nWelcome.",
        "NEWSLETTER_WELCOME_START_HERE": "Start | https://walkagain.example/start/",
        "NEWSLETTER_TIMEZONE": "America/New_York",
        "NEWSLETTER_PLAN_KEEP_DAYS": "14",
        **ANNOUNCE_ENV,  # the announcements' settings: checked in test_announce_settings.py
        **FEEDBACK_ENV,
    }
    assert set(env) - {"NEWSLETTER_URL"} == set(VARIABLES)
    s = Settings.from_env(env)
    assert (s.env, s.transport, s.smtp_security) == ("production", "smtp", "ssl")
    assert (s.smtp_host, s.smtp_port, s.smtp_user, s.smtp_password) == (
        "smtp.example.net",
        2525,
        "mark",
        "hunter2",
    )
    assert s.database == tmp_path / "db.sqlite3" and s.outbox == tmp_path / "outbox"
    assert s.smtp_timeout == 2.5 and s.retry_delay == 0.5 and s.max_attempts == 3
    assert s.rate_limit == Rate(30, 600) and s.proxy_count == 1
    assert s.base_url == "https://walkagain.example/newsletter"
    assert s.list_id == "Walk Again! <newsletter.walkagain.example>"
    assert "hunter2" not in repr(s) and "s" * 48 not in repr(s)
    assert (s.soft_bounce_limit, s.soft_bounce_days, s.imap_port) == (5, 14.0, 1993)
    assert s.mail.welcome_text == "Hello.\n\nWelcome."
    assert s.mail.start_here == (("Start", "https://walkagain.example/start/"),)
    assert (s.core.timezone, s.endpoint.plan_keep_days) == ("America/New_York", 14)
    assert s.video_feed_url.endswith("?channel_id=UCx") and s.video_skip_shorts is True
    assert (s.announce.digest_weekday, s.announce.digest_hour) == (4, 17)
    assert s.ses_topic_arn.endswith(":ses-feedback") and s.verp_domain.startswith("bounces.")
    assert s.sns_max_age == 1800
    assert "whk-secret" not in repr(s) and "imap-secret" not in repr(s)
    # The same values, by concern.
    assert (s.smtp.host, s.smtp.effective_port, s.smtp.timeout) == ("smtp.example.net", 2525, 2.5)
    assert s.http.timeout == 4.0 and s.http_timeout == 4.0
    assert (s.imap.host, s.imap.folder, s.imap.done_folder) == (
        "imap.example.net",
        "Bounces",
        "Bounces/Done",
    )
    assert (s.core.env, s.mail.transport, s.endpoint.proxy_count) == ("production", "smtp", 1)
    assert (s.announce.mode, s.mailgun.region, s.feedback.soft_bounce_limit) == ("digest", "eu", 5)


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("NEWSLETTER_SMTP_PORT", "smtp", "whole number"),
        ("NEWSLETTER_SMTP_PORT", "70000", "port number"),
        ("NEWSLETTER_TRANSPORT", "carrier-pigeon", "outbox, smtp"),
        ("NEWSLETTER_SMTP_SECURITY", "tls", "starttls, ssl, none"),
        ("NEWSLETTER_RATE_LIMIT", "lots", "COUNT/PERIOD"),
        ("NEWSLETTER_SITE_URL", "localhost:8000", "http:// or https://"),
        ("NEWSLETTER_BASE_URL", "https://x.example/?a=1", "query"),
        ("NEWSLETTER_FROM", "no address", "Name <address@domain>"),
        ("NEWSLETTER_SMTP_TIMEOUT", "-1", "positive"),
        ("NEWSLETTER_SECRET_KEY", "short", "too short"),
        ("NEWSLETTER_DATABASE", str(ROOT / "output" / "db.sqlite3"), "published"),
        ("NEWSLETTER_ENV", "staging", "development, production"),
        ("NEWSLETTER_SMTP_USER", "mark", "go together"),
    ],
)
def test_malformed_values_name_the_variable(name, value, words):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({name: value})
    message = str(error.value)
    assert name in message or name.removeprefix("NEWSLETTER_") in message
    assert words in message


def test_unknown_variable_is_refused_with_a_hint():
    with pytest.raises(
        ConfigError, match=r"NEWSLETTER_SMTP_HOTS \(did you mean NEWSLETTER_SMTP_HOST"
    ):
        Settings.from_env({"NEWSLETTER_SMTP_HOTS": "mail.example"})
    # Other programs' variables are none of our business.
    assert Settings.from_env({"SMTP_HOTS": "x", "PATH": "/bin"}).smtp_host == "localhost"


def test_production_refuses_development_defaults():
    assert Settings.from_env(PRODUCTION).env == "production"
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: production refuses"):
        Settings.from_env({**PRODUCTION, "NEWSLETTER_SECRET_KEY": DEV_SECRET_KEY})
    for name in (
        "NEWSLETTER_SECRET_KEY",
        "NEWSLETTER_FROM",
        "NEWSLETTER_SITE_URL",
        "NEWSLETTER_BASE_URL",
        "NEWSLETTER_POSTAL_ADDRESS",
        "NEWSLETTER_PROXY_COUNT",
    ):
        env = {k: v for k, v in PRODUCTION.items() if k != name}
        with pytest.raises(ConfigError, match=name):
            Settings.from_env(env)
    with pytest.raises(ConfigError, match="https"):
        Settings.from_env({**PRODUCTION, "NEWSLETTER_BASE_URL": "http://walkagain.example/nl"})


def test_load_accepts_settings_a_mapping_or_the_environment(monkeypatch, tmp_path):
    settings = Settings(database=tmp_path / "a.sqlite3")
    assert load(settings) is settings
    assert load({"NEWSLETTER_SITE_URL": "https://a.example/"}).site_url == "https://a.example"
    monkeypatch.setenv("NEWSLETTER_RATE_LIMIT", "5/minute")
    assert load().rate_limit == Rate(5, 60)
    monkeypatch.setenv("NEWSLETTER_TYPO", "1")
    with pytest.raises(ConfigError, match="NEWSLETTER_TYPO"):
        load()


# The announcements' settings -----------------------------------------------------------------
def test_every_announcement_setting_is_read():
    s = Settings.from_env(ANNOUNCE_ENV)
    assert s.feed_url == "https://walkagain.example/feeds/all.rss.xml"
    assert (s.announce_mode, s.announce_max_age_days) == ("digest", 3.0)
    assert s.announce_max_items == 12
    assert (s.announce_retries, s.announce_retry_delay) == (2, 0.5)
    assert s.reply_to == "mark@walkagain.example"
    assert s.unsubscribe_mailto == "unsubscribe@walkagain.example"
    assert (s.smtp_workers, s.smtp_rate) == (8, 50.0)
    assert (s.mailgun_api_key, s.mailgun_domain) == ("key-123", "mg.walkagain.example")
    assert s.mailgun_region == "eu" and s.mailgun_batch_size == 500
    assert s.mailgun_url == "https://mailgun-proxy.example"  # the override wins
    assert "key-123" not in repr(s)  # a secret never shows in logs


def test_announcement_defaults_run_locally():
    s = Settings()
    assert (s.transport, s.announce_mode, s.announce_max_age_days) == ("outbox", "each", 7.0)
    assert s.announce_max_items == 5  # more new items in one run wait for --yes
    assert (s.smtp_workers, s.smtp_rate, s.mailgun_batch_size) == (4, 0.0, 1000)
    assert s.mailgun_url == "https://api.mailgun.net" and s.feed_url == ""


@pytest.mark.parametrize(
    "name, value, words",
    [
        ("NEWSLETTER_ANNOUNCE_MODE", "weekly", "must be one of each, digest"),
        ("NEWSLETTER_ANNOUNCE_MAX_AGE_DAYS", "0", "positive"),
        ("NEWSLETTER_ANNOUNCE_MAX_ITEMS", "-1", "whole number"),
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
def test_malformed_announcement_values_name_the_variable(name, value, words):
    with pytest.raises(ConfigError, match=f"{name}.*({words})"):
        Settings.from_env({name: value})


def test_production_needs_the_proxy_count_said_and_zero_is_an_answer():
    """Trusting the wrong number of X-Forwarded-For hops either lets a client pick its IP or
    makes every client one IP: production refuses to guess."""
    without = {k: v for k, v in PRODUCTION.items() if k != "NEWSLETTER_PROXY_COUNT"}
    with pytest.raises(ConfigError, match="NEWSLETTER_PROXY_COUNT: production needs it set"):
        Settings.from_env(without)
    assert Settings.from_env({**without, "NEWSLETTER_PROXY_COUNT": "0"}).proxy_count == 0
    assert Settings.from_env({**without, "NEWSLETTER_ENV": "development"}).proxy_count == 0


def test_a_database_or_outbox_under_a_symlinked_output_is_refused(tmp_path, monkeypatch):
    """output/ as a symlink to the published folder: the resolved paths are compared."""
    import newsletter.settings as module

    root, published = tmp_path / "project", tmp_path / "published"
    root.mkdir()
    published.mkdir()
    (root / "output").symlink_to(published)
    monkeypatch.setattr(module, "ROOT", root)
    for name, change in (
        ("NEWSLETTER_DATABASE", {"database": published / "newsletter.sqlite3"}),
        ("NEWSLETTER_OUTBOX", {"outbox": published / "outbox"}),
        ("NEWSLETTER_DATABASE", {"database": root / "output" / "db.sqlite3"}),
    ):
        with pytest.raises(ConfigError, match=f"{name}=.*must not be under output/"):
            Settings(**change)
    assert Settings(database=tmp_path / "var" / "db.sqlite3").database.parent.name == "var"


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"ses_topic_arn": "not-an-arn"}, "NEWSLETTER_SES_TOPIC_ARN"),
        ({"imap_host": "imap.example.net"}, "NEWSLETTER_IMAP_USER and NEWSLETTER_IMAP_PASSWORD"),
        ({"soft_bounce_limit": 0}, "NEWSLETTER_SOFT_BOUNCE_LIMIT"),
    ],
)
def test_feedback_settings_are_checked(changes, words):
    with pytest.raises(ConfigError, match=words):
        Settings(**changes)


# Settings per concern --------------------------------------------------------------------------
def test_every_variable_is_defined_once_in_one_concern():
    """The variables are the concerns' fields: each named once, with help, under NEWSLETTER_."""
    fields = [
        (concern, f.metadata["env"])
        for concern, cls in CONCERNS.items()
        for f in dataclasses.fields(cls)
        if "env" in f.metadata
    ]
    names = [name for _, name in fields]
    assert len(names) == len(set(names)) == len(VARIABLES) == 56
    assert list(VARIABLES) == names  # in the concerns' order: the order of docs/settings.md
    for concern, name in fields:
        known = VARIABLES[name]
        assert known.concern == concern and name.startswith("NEWSLETTER_") and known.help
        assert getattr(CONCERNS[concern](), known.attribute) == known.default
    assert set(CONCERNS) == {f.name for f in dataclasses.fields(Settings)}


DEFAULTS = {
    CoreSettings: dict(
        env="development",
        database=ROOT / "var" / "newsletter.sqlite3",
        secret_key=DEV_SECRET_KEY,
        site_name="Walk Again",
        site_url="http://localhost:8000",
        base_url="http://127.0.0.1:5000",
        timezone="Europe/London",
    ),
    MailSettings: dict(
        transport="outbox",
        outbox=ROOT / "var" / "outbox",
        sender="Walk Again <newsletter@localhost>",
        postal_address="Walk Again, 1 Example Street, London",
        reply_to="",
        unsubscribe_mailto="",
        verp_domain="",
        welcome_text=DEFAULT_WELCOME_TEXT,
        welcome_start_here="",
    ),
    SmtpSettings: dict(
        host="localhost",
        port=0,
        security="starttls",
        user="",
        password="",
        timeout=10.0,
        workers=4,
        rate=0.0,
    ),
    MailgunSettings: dict(api_key="", domain="", region="us", base_url="", batch_size=1000),
    HttpSettings: dict(timeout=10.0),
    EndpointSettings: dict(
        rate_limit=Rate(20, 3600),
        proxy_count=None,
        retry_delay=30.0,
        max_attempts=10,
        plan_keep_days=30,
        resend_interval=600.0,
        confirm_max_age=48 * 3600,
        max_request_bytes=16 * 1024,
    ),
    AnnounceSettings: dict(
        feed_url="",
        mode="each",
        max_age_days=7.0,
        max_items=5,
        retries=3,
        retry_delay=5.0,
        video_feed_url="",
        video_skip_shorts=False,
        digest_weekday=0,
        digest_hour=8,
    ),
    FeedbackSettings: dict(
        soft_bounce_limit=3,
        soft_bounce_days=30.0,
        mailgun_webhook_key="",
        ses_topic_arn="",
        sns_max_age=3600.0,
    ),
    ImapSettings: dict(
        host="", port=993, user="", password="", folder="INBOX", done_folder="Processed"
    ),
}


@pytest.mark.parametrize("cls", list(DEFAULTS), ids=lambda cls: cls.__name__)
def test_each_concern_has_its_defaults_alone_and_in_the_settings(cls):
    def values(part):
        return {f.name: getattr(part, f.name) for f in dataclasses.fields(part)}

    assert values(cls()) == DEFAULTS[cls]
    (concern,) = [name for name, kind in CONCERNS.items() if kind is cls]
    part = getattr(Settings.from_env({}), concern)
    expected = DEFAULTS[cls] | ({"proxy_count": 0} if cls is EndpointSettings else {})
    assert values(part) == expected  # development takes 0 proxies


def test_derived_values_live_in_their_concern():
    s = Settings()
    assert s.smtp.effective_port == 587 and SmtpSettings(security="ssl").effective_port == 465
    assert s.mailgun.url == "https://api.mailgun.net"
    assert s.mail.from_address.addr_spec == "newsletter@localhost"
    assert (s.core.site_origin, s.core.base_origin) == (
        "http://localhost:8000",
        "http://127.0.0.1:5000",
    )
    assert s.core.list_id == "Walk Again <newsletter.localhost>"


@pytest.mark.parametrize("name", list(VARIABLES))
def test_an_empty_or_malformed_value_names_its_variable(name):
    """Every variable's parser refuses an empty value, and the error starts with its name."""
    with pytest.raises(ConfigError, match=f"^{name}=' ': "):
        Settings.from_env({name: " "})


@pytest.mark.parametrize(
    "concern, changes, name",
    [
        (CoreSettings, {"env": "staging"}, "NEWSLETTER_ENV"),
        (CoreSettings, {"secret_key": "short"}, "NEWSLETTER_SECRET_KEY"),
        (CoreSettings, {"base_url": "ftp://x.example"}, "NEWSLETTER_BASE_URL"),
        (CoreSettings, {"timezone": "Mars/Olympus_Mons"}, "NEWSLETTER_TIMEZONE"),
        (CoreSettings, {"timezone": "../../etc/passwd"}, "NEWSLETTER_TIMEZONE"),
        (MailSettings, {"transport": "pigeon"}, "NEWSLETTER_TRANSPORT"),
        (MailSettings, {"sender": "nobody"}, "NEWSLETTER_FROM"),
        (MailSettings, {"postal_address": " "}, "NEWSLETTER_POSTAL_ADDRESS"),
        (MailSettings, {"reply_to": "a@b, c@d"}, "NEWSLETTER_REPLY_TO"),
        (SmtpSettings, {"port": 70000}, "NEWSLETTER_SMTP_PORT"),
        (SmtpSettings, {"password": "x"}, "NEWSLETTER_SMTP_USER and NEWSLETTER_SMTP_PASSWORD"),
        (SmtpSettings, {"timeout": 0}, "NEWSLETTER_SMTP_TIMEOUT"),
        (SmtpSettings, {"workers": 65}, "NEWSLETTER_SMTP_WORKERS"),
        (SmtpSettings, {"rate": -1}, "NEWSLETTER_SMTP_RATE"),
        (MailgunSettings, {"region": "asia"}, "NEWSLETTER_MAILGUN_REGION"),
        (MailgunSettings, {"base_url": "mailgun"}, "NEWSLETTER_MAILGUN_BASE_URL"),
        (HttpSettings, {"timeout": 0}, "NEWSLETTER_HTTP_TIMEOUT"),
        (AnnounceSettings, {"mode": "weekly"}, "NEWSLETTER_ANNOUNCE_MODE"),
        (AnnounceSettings, {"retry_delay": -1}, "NEWSLETTER_ANNOUNCE_RETRY_DELAY"),
        (AnnounceSettings, {"video_feed_url": "youtube"}, "NEWSLETTER_VIDEO_FEED_URL"),
        (FeedbackSettings, {"soft_bounce_limit": 0}, "NEWSLETTER_SOFT_BOUNCE_LIMIT"),
        (ImapSettings, {"host": "imap.example"}, "NEWSLETTER_IMAP_HOST"),
    ],
)
def test_a_concern_checks_its_own_values_and_names_the_variable(concern, changes, name):
    with pytest.raises(ConfigError, match=f"^{name}"):
        concern(**changes)


def test_the_http_timeout_is_its_own_setting():
    """HTTP requests (feeds, live checks, Mailgun) no longer borrow NEWSLETTER_SMTP_TIMEOUT."""
    s = Settings.from_env({"NEWSLETTER_SMTP_TIMEOUT": "3"})
    assert (s.smtp.timeout, s.http.timeout) == (3.0, 10.0)
    s = Settings.from_env({"NEWSLETTER_HTTP_TIMEOUT": "2.5"})
    assert (s.smtp.timeout, s.http.timeout) == (10.0, 2.5)
    with pytest.raises(ConfigError, match="NEWSLETTER_HTTP_TIMEOUT='0': must be a positive"):
        Settings.from_env({"NEWSLETTER_HTTP_TIMEOUT": "0"})


def test_production_refusal_holds_however_the_settings_are_made():
    core = CoreSettings(
        env="production",
        secret_key="s" * 48,
        site_url="https://walkagain.example",
        base_url="https://walkagain.example/newsletter",
    )
    mail = MailSettings(
        sender="Walk Again <news@walkagain.example>",
        postal_address="Walk Again, 2 Mill Lane, Leeds LS1 1AA",
    )
    endpoint = EndpointSettings(proxy_count=1)
    assert Settings(core=core, mail=mail, endpoint=endpoint).core.env == "production"
    with pytest.raises(ConfigError, match="NEWSLETTER_FROM: production needs a real value"):
        Settings(core=core, endpoint=endpoint)
    with pytest.raises(ConfigError, match="NEWSLETTER_PROXY_COUNT: production needs it set"):
        Settings(core=core, mail=mail)
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY: production refuses"):
        Settings(core=core, mail=mail, endpoint=endpoint, secret_key=DEV_SECRET_KEY)
    with pytest.raises(ConfigError, match="NEWSLETTER_BASE_URL=http://walkagain.example/nl: pro"):
        Settings(core=core, mail=mail, endpoint=endpoint).replace(
            base_url="http://walkagain.example/nl"
        )


# Compatibility: the flat names of the one-dataclass Settings ----------------------------------
def test_every_former_flat_name_still_reads_its_concern():
    s = Settings.from_env(ANNOUNCE_ENV | FEEDBACK_ENV)
    for flat, (concern, attribute) in FLAT.items():
        assert getattr(s, flat) == getattr(getattr(s, concern), attribute), flat
    for flat, path in DERIVED.items():
        concern, attribute = path.split(".")
        assert getattr(s, flat) == getattr(getattr(s, concern), attribute), flat
    # Every variable's flat name is the variable's name, but NEWSLETTER_FROM's (sender).
    assert {known.flat for known in VARIABLES.values()} <= set(FLAT)
    renamed = {name: known.flat for name, known in VARIABLES.items()
               if known.flat != name.removeprefix("NEWSLETTER_").lower()}  # fmt: skip
    assert renamed == {"NEWSLETTER_FROM": "sender"}


def test_flat_names_build_and_replace_the_concern_they_belong_to():
    s = Settings(smtp_host="mail.example", smtp_port=2525, announce_mode="digest")
    assert (s.smtp.host, s.smtp.port, s.announce.mode) == ("mail.example", 2525, "digest")
    t = s.replace(smtp_port=465, http_timeout=3)
    assert (t.smtp.host, t.smtp.port, t.http.timeout) == ("mail.example", 465, 3)
    assert (s.smtp.port, s.mailgun) == (2525, t.mailgun)  # s unchanged; other concerns shared
    u = s.replace(smtp=SmtpSettings(host="other.example"), smtp_user="u", smtp_password="p")
    assert (u.smtp.host, u.smtp.user, u.smtp.port) == ("other.example", "u", 0)
    with pytest.raises(ConfigError, match="NEWSLETTER_SMTP_SECURITY='tls'"):
        s.replace(smtp_security="tls")
    with pytest.raises(TypeError, match="smtp_hots"):
        Settings(smtp_hots="mail.example")
