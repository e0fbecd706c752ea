"""The page's token on a real loopback socket: a prompt for browsers, JSON for the API, 401 missing apart from 403 wrong."""

from __future__ import annotations

import re
import shutil
from html.parser import HTMLParser

import pytest
import requests

from edge.web.server import prefers_html
from tests.edge.test_web import STATUS
from tests.edge.test_web_attacks import FRAMING, raw, serve

TOKEN = "let-me-in-7f3a"
GUESS = "guess-81c2-not-it"
CHROME = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8"
FIREFOX = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
IMAGE = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
PROMETHEUS = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
NEEDED, WRONG = "This ShelfID device needs its page token", "That token is not right"


@pytest.fixture
def guarded(monkeypatch):
    server = serve(token=TOKEN, monkeypatch=monkeypatch)
    yield server
    server.stop()


class Form(HTMLParser):
    """The prompt's form: its method, action and inputs (name -> type)."""

    def __init__(self, html: str):
        super().__init__()
        self.attrs, self.inputs = {}, {}
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        if tag == "form":
            self.attrs = dict(attrs)
        elif tag == "input":
            self.inputs[dict(attrs)["name"]] = dict(attrs)["type"]


def assert_guarded_headers(response) -> None:
    assert response.headers["X-Frame-Options"] == FRAMING["X-Frame-Options"]
    assert response.headers["X-Content-Type-Options"] == FRAMING["X-Content-Type-Options"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize("target,accept", [("/", "*/*"), ("/index.html", "*/*"), ("/", CHROME), ("/api/status", CHROME),
                                           ("/snapshot.jpg", FIREFOX), ("/nope", CHROME)])
def test_a_browser_without_a_token_gets_a_401_page_with_a_password_form(guarded, target, accept):
    response = requests.get(guarded.url + target, headers={"Accept": accept}, allow_redirects=False, timeout=5)
    assert response.status_code == 401 and response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert NEEDED in response.text and WRONG not in response.text
    assert all(where in response.text for where in ("web-token", "web.token_file", "$SHELFID_WEB_TOKEN"))
    form = Form(response.text)
    assert form.attrs["method"] == "get" and form.attrs["action"] == "/" and form.inputs == {"token": "password"}
    assert "<script" not in response.text and "script-src" not in response.headers["Content-Security-Policy"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert_guarded_headers(response)


@pytest.mark.parametrize("target,accept", [("/api/status", "*/*"), ("/api/events", "application/json"), ("/metrics", PROMETHEUS),
                                           ("/snapshot.jpg", IMAGE), ("/thumb/00000000-0000-0000-0000-000000000000/crop.jpg", IMAGE),
                                           ("/api/status", "text/html;q=0.5, application/json")])
def test_the_api_images_and_scrapers_without_a_token_get_a_json_401(guarded, target, accept):
    response = requests.get(guarded.url + target, headers={"Accept": accept}, timeout=5)
    assert response.status_code == 401 and response.headers["Content-Type"] == "application/json"
    assert response.json() == {"error": response.json()["error"], "status": 401} and "a token is needed" in response.json()["error"]
    assert_guarded_headers(response)


@pytest.mark.parametrize("how", ["bearer", "cookie", "query"])
def test_a_wrong_token_is_a_json_403_that_says_so_for_the_api(guarded, how):
    headers = {"Authorization": f"Bearer {GUESS}"} if how == "bearer" else {"Cookie": f"shelfid_token={GUESS}"} if how == "cookie" else {}
    query = f"?token={GUESS}" if how == "query" else ""
    response = requests.get(guarded.url + "/api/status" + query, headers=headers, allow_redirects=False, timeout=5)
    assert response.status_code == 403 and response.json()["status"] == 403 and response.json()["error"].startswith("wrong token")
    assert GUESS not in response.text and TOKEN not in response.text and "WWW-Authenticate" not in response.headers
    assert_guarded_headers(response)


@pytest.mark.parametrize("how", ["bearer", "cookie", "query"])
def test_a_wrong_token_on_the_page_shows_the_prompt_with_a_403_and_no_echo(guarded, how):
    headers = {"Authorization": f"Bearer {GUESS}"} if how == "bearer" else {"Cookie": f"shelfid_token={GUESS}"} if how == "cookie" else {}
    query = f"?token={GUESS}" if how == "query" else ""
    response = requests.get(guarded.url + "/" + query, headers=headers | {"Accept": CHROME}, allow_redirects=False, timeout=5)
    assert response.status_code == 403 and "text/html" in response.headers["Content-Type"]
    assert WRONG in response.text and response.text.index(WRONG) < response.text.index("<form")
    assert GUESS not in response.text and TOKEN not in response.text and "Set-Cookie" not in response.headers
    assert Form(response.text).inputs == {"token": "password"}
    assert_guarded_headers(response)


@pytest.mark.parametrize("target,headers", [("/?token=", {}), ("/api/status", {"Authorization": "Bearer "}),
                                            ("/api/status", {"Cookie": "shelfid_token="}), ("/api/status", {"Authorization": "Basic eDp5"})])
def test_an_empty_token_or_another_scheme_counts_as_missing_not_wrong(guarded, target, headers):
    response = requests.get(guarded.url + target, headers=headers, allow_redirects=False, timeout=5)
    assert response.status_code == 401


def test_submitting_the_prompt_sets_the_cookie_and_opens_the_page(guarded):
    browser = requests.Session()
    browser.cookies.set("shelfid_token", "an-old-token")  # a token rotated since: the prompt says so, the form fixes it
    prompt = browser.get(guarded.url + "/", headers={"Accept": CHROME}, timeout=5)
    assert prompt.status_code == 403 and WRONG in prompt.text
    form = Form(prompt.text)
    page = browser.get(guarded.url + form.attrs["action"], params={"token": TOKEN}, timeout=5)  # what the browser sends on submit
    [redirect] = page.history
    assert redirect.status_code == 303 and redirect.headers["Location"] == "/" and "HttpOnly" in redirect.headers["Set-Cookie"]
    assert page.status_code == 200 and page.url == guarded.url + "/" and "Recent identifications" in page.text
    assert browser.get(guarded.url + "/api/status", timeout=5).json()["device"] == STATUS["device"]


def test_head_on_the_page_without_a_token_is_a_401_without_a_body(guarded):
    response, body = raw(guarded, "HEAD", "/")
    assert response.status == 401 and body == b"" and int(response.getheader("Content-Length")) > 0


def test_the_page_and_its_alias_are_served_with_the_token(guarded):
    for target in ("/", "/index.html"):
        response = requests.get(guarded.url + target, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        assert response.status_code == 200 and "Recent identifications" in response.text


def test_the_panels_wrap_long_text(guarded):
    html = requests.get(guarded.url + "/", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text
    [rule] = re.findall(r"\n\s*section \{[^}]*\}", html)
    assert "overflow-wrap: anywhere" in rule and "word-break: break-word" in rule and "min-width: 0" in rule


@pytest.mark.parametrize("accept,html", [
    (CHROME, True), (FIREFOX, True), ("text/html", True), ("TEXT/HTML; q=1.0", True), ("application/json, text/html", True),
    ("", False), ("*/*", False), (IMAGE, False), (PROMETHEUS, False), ("application/json", False), ("text/html;q=0", False),
    ("text/html;q=0.5, application/json", False), ("text/html;q=nan", False), ("text/html;q=2", False), ("text/*", False),
    ("," * 10_000 + "text/html", False),
])
def test_prefers_html_only_when_text_html_ranks_first(accept, html):
    assert prefers_html(accept) is html


needs_chromium = pytest.mark.skipif(not (shutil.which("chromium") and shutil.which("chromedriver")), reason="needs chromium and chromedriver")


@needs_chromium
def test_in_chromium_the_prompt_logs_in_and_a_long_sync_error_stays_in_its_panel(guarded):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from tools.bench_web import chromium

    guarded.live.set_status(STATUS | {"sync": STATUS["sync"] | {"last_error": "sync failed: " + "x" * 300 + "/" + "y" * 300}})
    driver = chromium()
    try:
        driver.get(guarded.url + "/")
        assert NEEDED in driver.find_element(By.TAG_NAME, "body").text
        driver.find_element(By.NAME, "token").send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
        wait = WebDriverWait(driver, 20, poll_frequency=0.2)
        wait.until(lambda d: "sync failed" in d.find_element(By.ID, "health").text)
        assert driver.current_url == guarded.url + "/"  # the token left the address bar
        widths = driver.execute_script("""
            return [...document.querySelectorAll('section')].map((s) => [s.scrollWidth, s.clientWidth])
                   .concat([[document.documentElement.scrollWidth, window.innerWidth]]);""")
        assert all(scroll <= client for scroll, client in widths), widths
    finally:
        driver.quit()
