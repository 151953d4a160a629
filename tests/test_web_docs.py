"""The API docs, /docs (Swagger UI) and /redoc (ReDoc), work offline: every script, stylesheet and request comes
from the server itself (files shipped by the pinned package fastapi-offline), and the pages' Content-Security-Policy
lets them run without 'unsafe-inline' scripts.

The HTML checks use FastAPI's TestClient; the rendering checks load both pages in real headless Chromium
(Debian's chromium + chromium-driver) against a real `ferkit serve` on 127.0.0.1, and skip, with the reason, only
where those are not installed.
"""

from __future__ import annotations

import base64
import hashlib
import re
import urllib.request
from urllib.parse import urlsplit

import pytest

from ferkit.testing.browser import browser_missing, chromium, running_server
from ferkit.testing.media import make_checkpoint

# starlette >= 1.x asks for httpx2 under its TestClient; httpx works the same here
pytestmark = pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")

MISSING = browser_missing()
needs_browser = pytest.mark.skipif(MISSING is not None, reason=f"browser test needs headless Chromium: {MISSING}")
PAGES = ("/docs", "/redoc")
# what each page must load: (scripts, stylesheets), as paths on the server
ASSETS = {"/docs": ({"/docs/assets/swagger-ui-bundle.js"}, {"/docs/assets/swagger-ui.css"}),
          "/redoc": ({"/docs/assets/redoc.standalone.js"}, set())}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("docs-model") / "tiny.pt")


@pytest.fixture(scope="module")
def client(tiny_model, tmp_path_factory):
    from fastapi.testclient import TestClient

    from ferkit.web.app import create_app

    app = create_app(model=str(tiny_model), workers=1, threads=1, preload=False,
                     scratch_root=tmp_path_factory.mktemp("scratch"))
    with TestClient(app) as test_client:
        yield test_client


def sha256_source(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


@pytest.mark.parametrize("page", PAGES)
def test_docs_html_names_no_other_host_and_its_files_are_served(client, page):
    response = client.get(page)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    urls = re.findall(r"""https?://[^\s"'<>)]+""", html)
    assert [u for u in urls if urlsplit(u).netloc != "testserver"] == []
    scripts = set(re.findall(r'<script src="([^"]+)"', html))
    styles = set(re.findall(r'<link type="text/css" rel="stylesheet" href="([^"]+)"', html))
    icons = set(re.findall(r'<link rel="shortcut icon" href="([^"]+)"', html))
    assert (scripts, styles) == ASSETS[page]
    assert icons == {"/docs/assets/favicon.png"}
    kinds = {"js": "javascript", "css": "text/css", "png": "image/png"}
    for path in scripts | styles | icons:
        asset = client.get(path)
        assert asset.status_code == 200 and len(asset.content) > 1000, path
        assert kinds[path.rsplit(".", 1)[1]] in asset.headers["content-type"], path


@pytest.mark.parametrize("page", PAGES)
def test_docs_csp_allows_exactly_the_pages_own_inline_scripts(client, page):
    response = client.get(page)
    csp = dict(part.strip().split(" ", 1) for part in response.headers["content-security-policy"].split(";"))
    inline = re.findall(r"<script>(.*?)</script>", response.text, re.DOTALL)
    assert len(inline) == (1 if page == "/docs" else 0)  # Swagger UI starts from one; ReDoc from its <redoc> tag
    assert csp["script-src"].split() == ["'self'", *map(sha256_source, inline)]
    assert "http" not in response.headers["content-security-policy"]
    assert csp["default-src"] == "'self'" and csp["connect-src"] == "'self'" and csp["frame-ancestors"] == "'none'"
    # the rest of the site keeps its strict policy
    assert "'unsafe-inline'" not in client.get("/").headers["content-security-policy"]


def test_redoc_script_is_served_whole_without_its_cdn_logo(client):
    from ferkit.web.docs import ASSETS_DIR, REDOC_LOGO

    served = client.get("/docs/assets/redoc.standalone.js")
    assert served.status_code == 200 and "javascript" in served.headers["content-type"]
    shipped = (ASSETS_DIR / "redoc.standalone.js").read_bytes()
    assert REDOC_LOGO in shipped  # the one image ReDoc fetches from outside (a new version may move it: see docs.py)
    assert b"cdn.redoc.ly" not in served.content and served.content == shipped.replace(REDOC_LOGO, b"data:,")


def test_docs_assets_are_not_in_the_openapi_schema(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert "/api/v1/predict" in paths and not [p for p in paths if p.startswith(("/docs", "/redoc"))]


# ---------------------------------------------------------------------------------------------- in Chromium


@pytest.fixture(scope="module")
def served(tiny_model):
    with running_server(tiny_model, "--workers", 1, "--threads", 1) as url:
        yield url


@pytest.fixture(scope="module")
def browser(served):
    with chromium() as driver:
        yield driver


def loaded_resources(driver) -> dict:
    """What the page in driver loaded: its scripts, stylesheets and every request the Resource Timing API saw
    (the OpenAPI schema's fetch included), each request with its HTTP status."""
    return driver.execute_script("""
        return {scripts: [...document.scripts].map(s => s.src).filter(Boolean),
                styles: [...document.querySelectorAll('link[rel=stylesheet]')].map(l => l.href),
                requests: performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus])};""")


def assert_all_local(url: str, page: str, loaded: dict, console: list) -> None:
    scripts, styles = (sorted(url + p for p in paths) for paths in ASSETS[page])
    assert sorted(loaded["scripts"]) == scripts and sorted(loaded["styles"]) == styles
    for asset in scripts + styles:
        with urllib.request.urlopen(asset, timeout=10) as response:
            assert response.status == 200, asset
    requests = dict(loaded["requests"])
    assert set(scripts + styles) <= set(requests) and url + "/openapi.json" in requests
    assert {name: status for name, status in requests.items() if not name.startswith(url + "/")} == {}
    assert {name: status for name, status in requests.items() if status != 200} == {}
    problems = [e["message"] for e in console if e["level"] == "SEVERE" or "Content Security Policy" in e["message"]]
    assert problems == []


@needs_browser
def test_swagger_ui_renders_offline_in_chromium(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")  # drop what earlier pages logged
    browser.get(served + "/docs")
    predict = '.opblock-summary-path[data-path="/api/v1/predict"]'
    WebDriverWait(browser, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, predict))
    assert browser.find_element(By.CSS_SELECTOR, predict).is_displayed()
    paths = {e.get_attribute("data-path") for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
    assert {"/api/v1/predict", "/api/v1/predict/batch", "/api/v1/video", "/healthz"} <= paths
    assert "ferkit" in browser.find_element(By.CSS_SELECTOR, ".info .title").text
    assert_all_local(served, "/docs", loaded_resources(browser), browser.get_log("browser"))


@needs_browser
def test_redoc_renders_offline_in_chromium(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get_log("browser")
    browser.get(served + "/redoc")
    WebDriverWait(browser, 30).until(
        lambda d: any("ferkit" in h.text for h in d.find_elements(By.CSS_SELECTOR, "h1")))
    assert "/api/v1/predict" in browser.find_element(By.TAG_NAME, "body").get_attribute("textContent")
    assert_all_local(served, "/redoc", loaded_resources(browser), browser.get_log("browser"))
