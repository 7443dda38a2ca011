"""The endpoint's pages wear the blog theme itself: they extend theme/templates/base.html, so the
header (menu from MENUITEMS), the footer and the stylesheet are the blog's, and a change to the
theme changes them too."""

import json
import runpy
import shutil
import subprocess
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup

import newsletter.subscriptions.app as app_module
from newsletter.settings import ROOT
from newsletter.subscriptions.app import create_app
from tests.conftest import newsletter_settings

SITE = "http://localhost:8000"
BASE = "http://127.0.0.1:5000"
ARTICLE = SITE + "/2026/the-best-muscle-to-train-for-knee-pain/"
PAGES = ROOT / "newsletter" / "templates" / "pages"
VNU = ROOT / "node_modules" / "vnu-jar" / "build" / "dist" / "vnu.jar"
CONF = runpy.run_path(str(ROOT / "pelicanconf.py"))
FEED_URLS = [SITE + "/" + CONF["FEEDS"][feed] for feed in ("all_rss", "all_atom")]
JSON_FEED_URL = SITE + "/" + CONF["FEEDS"]["all_json"]  # in <head> only, not in the footer


def make_app(tmp_path):
    return create_app(newsletter_settings(tmp_path, site_url=SITE, base_url=BASE))


@pytest.fixture
def app(tmp_path):
    app = make_app(tmp_path)
    yield app
    app.extensions["newsletter"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def fetch_pages(client, app):
    """name -> (response, parsed page) for each kind of page the endpoint shows."""
    answers = {
        "subscribe": client.get("/subscribe?source=" + ARTICLE),
        "message": client.post("/subscribe", data={"email": "reader@example.com"}),
        "invalid-email": client.post("/subscribe", data={"email": "not an address"}),
        "error": client.get("/confirm/not-a-token"),
        "not-found": client.get("/nothing-here"),
    }
    nl = app.extensions["newsletter"]
    nl.sender.apply_requests()
    (subscriber,) = nl.subscribers.list()
    answers["unsubscribe"] = client.get(
        "/unsubscribe/" + nl.tokens.unsubscribe_token(subscriber.public_id)
    )
    answers["confirm"] = client.get(
        "/confirm/" + nl.tokens.confirm_token(subscriber.public_id, subscriber.confirm_nonce)
    )
    return {name: (answer, BeautifulSoup(answer.get_data(as_text=True), "html.parser"))
            for name, answer in answers.items()}  # fmt: skip


@pytest.fixture
def pages(client, app):
    return fetch_pages(client, app)


def test_the_pages_render_what_the_views_say(pages):
    expected = {
        "subscribe": (200, "Stay tuned"),
        "message": (200, "Check your inbox"),
        "invalid-email": (400, "That did not work"),
        "error": (400, "Link not valid"),
        "not-found": (404, "Not found"),
        "unsubscribe": (200, "Unsubscribe"),
        "confirm": (200, "Confirm your subscription"),
    }
    for name, (status, title) in expected.items():
        answer, html = pages[name]
        assert (answer.status_code, answer.mimetype) == (status, "text/html"), name
        assert html.title.get_text() == f"{title} · Walk Again", name
        assert html.select_one("main#main .page-header h1").get_text() == title, name
        if status >= 400:
            alert = html.select_one(".page-header p.form-status#form-error[role=alert]")
            assert alert is not None and len(alert.get_text(strip=True)) > 15, name
    assert "Almost done" in pages["message"][1].select_one(".page-header .dek").get_text()


def test_header_and_menu_come_from_the_theme_and_menuitems(pages):
    menu = [("Articles", SITE + "/")]
    menu += [(title, SITE + "/" + link) for title, link in CONF["MENUITEMS"]]
    for name, (_, html) in pages.items():
        header = html.select_one("body > header.site-header")
        assert header.select_one("a.site-name")["href"] == SITE + "/", name
        assert header.select_one("a.site-name").get_text() == CONF["SITENAME"], name
        links = [(a.get_text(), a["href"]) for a in header.select("nav .nav-list a")]
        assert links[:-1] == menu, name
        assert html.select_one("a.skip-link")["href"] == "#main", name
        subscribe = links[-1]
        assert subscribe[0] == "Subscribe", name
        # The menu's Subscribe link reaches a form on every page (the page's own, or the footer's;
        # the unsubscribe page has none: its link goes to the subscribe page).
        if name in ("unsubscribe", "confirm"):
            assert subscribe[1] == BASE + "/subscribe"
            continue
        target = html.find(id=subscribe[1].removeprefix("#"))
        assert target is not None and target.select_one("form.subscribe-form"), name


def test_footer_comes_from_the_theme(pages):
    for name, (_, html) in pages.items():
        footer = html.select_one("body > footer.site-footer")
        meta = footer.select_one(".footer-meta").get_text(" ", strip=True)
        assert f"© {CONF['SITENAME']} · {CONF['AUTHOR']}" in meta, name
        hrefs = [a["href"] for a in footer.select(".footer-meta a")]
        assert hrefs == [*FEED_URLS, SITE + "/archives/"], name
        assert footer.select_one(".footer-note") is not None, name


def test_one_stay_tuned_form_per_page_posting_here(pages):
    for name, (_, html) in pages.items():
        forms = html.select("form.subscribe-form")
        buttons = {"unsubscribe": "Unsubscribe", "confirm": "Yes, subscribe me"}
        if name in buttons:  # no second sign-up form under the page's one button
            assert forms == [] and html.select_one("main form button").get_text() == buttons[name]
            continue
        assert len(forms) == 1, name
        assert forms[0]["action"] == BASE + "/subscribe", name
        assert forms[0].select_one(".consent").get_text() == CONF["NEWSLETTER_CONSENT"], name
        ids = [tag["id"] for tag in html.select("[id]")]
        assert len(ids) == len(set(ids)), name
    # The subscribe page is the form: the footer does not repeat it.
    subscribe = pages["subscribe"][1]
    assert subscribe.select_one("main section.stay-tuned form.subscribe-form") is not None
    assert subscribe.select_one("footer .stay-tuned") is None
    assert subscribe.select_one("input[name=source]")["value"] == ARTICLE
    invalid = pages["invalid-email"][1].select_one("main input#email")
    assert invalid["aria-invalid"] == "true" and invalid["value"] == "not an address"
    # Other pages keep the theme's footer form.
    assert pages["message"][1].select_one("footer #stay-tuned-footer form") is not None


def test_head_noindex_stylesheet_loads_and_no_script(pages, client):
    for name, (answer, html) in pages.items():
        assert html.html["lang"] == CONF["DEFAULT_LANG"], name
        assert html.find("meta", attrs={"name": "robots"})["content"] == "noindex", name
        assert html.find("link", rel="canonical") is None, name
        assert html.find("script") is None, name  # the page's CSP allows no script
        (stylesheet,) = html.find_all("link", rel="stylesheet")
        href = stylesheet["href"]
        assert href == BASE + "/static/css/style.css", name
        css = client.get(urlsplit(href).path)
        assert css.status_code == 200 and css.mimetype == "text/css", name
        assert b".site-header" in css.data and b".site-footer" in css.data
        style_src = answer.headers["Content-Security-Policy"].split("style-src ")[1].split(";")[0]
        assert "'self'" in style_src.split() and BASE in style_src.split(), name
        feeds = [link["href"] for link in html.find_all("link", rel="alternate")]
        assert feeds == [*FEED_URLS, JSON_FEED_URL], name


def test_the_endpoint_keeps_no_copy_of_the_theme(app):
    for path in PAGES.glob("*.html"):
        text = path.read_text(encoding="utf-8")
        for theme_markup in ("site-header", "nav-list", "site-footer", "footer-meta", "<html"):
            assert theme_markup not in text, f"{path.name} copies the theme's {theme_markup}"
    assert app.jinja_env.get_template("base.html").filename == str(
        ROOT / "theme" / "templates" / "base.html"
    )
    for name in ("subscribe.html", "message.html", "unsubscribe.html"):
        assert '{% extends "endpoint.html" %}' in (PAGES / name).read_text(encoding="utf-8")


def test_a_change_to_the_theme_shows_on_the_pages(tmp_path, monkeypatch):
    """A copy of the theme and the site settings, changed: the endpoint's pages follow."""
    root = tmp_path / "root"
    shutil.copytree(ROOT / "theme" / "templates", root / "theme" / "templates")
    base = root / "theme" / "templates" / "base.html"
    note = "The information here is general"
    text = base.read_text(encoding="utf-8")
    assert note in text
    base.write_text(text.replace(note, "A changed footer note. " + note), encoding="utf-8")
    conf = (ROOT / "pelicanconf.py").read_text(encoding="utf-8")
    menu = 'MENUITEMS = [("Archives", "archives/"), ("About", "about/")]'
    assert menu in conf
    conf = conf.replace(menu, 'MENUITEMS = [("Videos", "videos/"), ("About", "about/")]')
    (root / "pelicanconf.py").write_text(conf, encoding="utf-8")
    monkeypatch.setattr(app_module, "ROOT", root)
    app = make_app(tmp_path)
    try:
        html = BeautifulSoup(
            app.test_client().get("/subscribe").get_data(as_text=True), "html.parser"
        )
    finally:
        app.extensions["newsletter"].close()
    assert html.select_one(".footer-note").get_text().startswith("A changed footer note. ")
    links = [(a.get_text(), a["href"]) for a in html.select("header.site-header .nav-list a")]
    assert ("Videos", SITE + "/videos/") in links and "Archives" not in dict(links)


@pytest.mark.slow  # the Nu HTML Checker (Java)
def test_pages_are_valid_html(pages, tmp_path):
    if not VNU.is_file() or not shutil.which("java"):
        pytest.fail("the Nu HTML Checker is not installed: run `bash bin/setup --test`")
    files = []
    for name, (answer, _) in pages.items():
        files.append(tmp_path / f"{name}.html")
        files[-1].write_bytes(answer.data)
    result = subprocess.run(
        ["java", "-Xss4m", "-jar", str(VNU), "--errors-only", "--format", "json",
         "--exit-zero-always", *map(str, files)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    report = json.loads(result.stderr or result.stdout)
    errors = [f"{m.get('url', '')}:{m.get('lastLine')}: {m['message']}" for m in report["messages"]]
    assert errors == [], "\n".join(errors)
