"""The search page at / of `lfm2-search serve`, in a real browser: headless Chromium (Debian's
chromium-headless-shell, which .ci/run installs), with the API key on. One test types the key and
a query and presses Enter over the DevTools protocol; another loads a shareable link (query,
mode and filter in the URL) and saves a screenshot."""

import os
import re
import shutil
import signal
import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest

from test_api_live import server  # noqa: F401 - the live-server fixture (uvicorn on 127.0.0.1, key "live-key")

pytestmark = pytest.mark.slow  # runs a live server and a browser

CHROMIUM = next((shutil.which(c) for c in ("chromium-headless-shell", "chromium", "chromium-browser")
                 if shutil.which(c)), None)
SCREENSHOT = Path(__file__).resolve().parents[1] / "eval" / "out" / "search-page.png"


def end_browser(browser: subprocess.Popen) -> None:
    """End a browser started with start_new_session=True, helpers included. Debian's
    chromium-headless-shell is a shell script that runs the browser as its child: ending the
    script alone left the browser and its helpers running, so the whole group is ended."""
    try:
        os.killpg(browser.pid, signal.SIGTERM)
        browser.wait(timeout=10)
    except ProcessLookupError:  # the group had already ended
        pass
    except subprocess.TimeoutExpired:
        os.killpg(browser.pid, signal.SIGKILL)
        browser.wait(timeout=10)


def chromium(*args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"]
    browser = subprocess.Popen([CHROMIUM, *flags, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, start_new_session=True)
    try:
        return browser.communicate(timeout=120)[0]
    finally:
        end_browser(browser)  # a no-op after a normal exit; on a timeout, no browser is left behind


def test_the_page_and_its_data_without_a_browser(server):  # noqa: F811 - `server` is the fixture imported above
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<title>lfm2-search</title>" in page.text
    assert httpx.get(server + "/facets").status_code == 401  # the data needs the key; the page asks for it
    facets = httpx.get(server + "/facets", headers={"Authorization": "Bearer live-key"}).json()
    assert facets["chunks"] >= 20 and "commit" in facets


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")
def test_the_page_searches_and_highlights_in_a_real_browser(server, tmp_path):  # noqa: F811 - `server` is the fixture imported above
    headers = {"Authorization": "Bearer live-key"}
    httpx.post(
        server + "/documents",
        headers=headers,
        json={
            "documents": [
                {
                    "id": "ops",
                    "text": "Rotate the signing keys every month.",
                    "metadata": {"lang": "en", "team": "security"},
                },
                {
                    "id": "ops-2",
                    "text": "Rotate the signing keys of the build farm.",
                    "metadata": {"lang": "en", "team": "infra"},
                },
            ]
        },
    )
    facets = httpx.get(server + "/facets", headers=headers).json()
    assert facets["fields"]["team"] == [["security", 1], ["infra", 1]] or sorted(facets["fields"]["team"]) == [
        ["infra", 1],
        ["security", 1],
    ]
    # The query, mode and a filter in the URL (a shareable link), the key in its fragment (never sent).
    url = (
        f"{server}/?"
        + urllib.parse.urlencode({"q": "rotate the signing keys", "mode": "hybrid", "team": "security"})
        + "#key=live-key"
    )
    profile = f"--user-data-dir={tmp_path / 'profile'}"
    dom = chromium(profile, "--dump-dom", url)
    results = dom[dom.index('<div id="results">'):]  # what the page's script rendered (not the script's source)
    assert results.startswith('<div id="results"><article class="hit">'), dom[-3000:]
    assert re.search(r'<mark style="--w:[01]\.\d\d">', results)  # chunk tokens that won query tokens, highlighted
    assert re.search(r'<div id="status" role="status" class="">\d+ documents? in \d+ ms', dom)
    assert '<option value="en">en (' in dom  # the language filter, from /facets
    assert "team: security (1)</option>" in dom  # and one per metadata field with few values
    assert "ops-2" not in results and "ops" in results  # the URL's team filter applied
    wrong = chromium(f"--user-data-dir={tmp_path / 'other'}", "--dump-dom", url.replace("live-key", "wrong"))
    assert 'class="error">401 unauthorized' in wrong and '<div id="results"></div>' in wrong
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    chromium(profile, f"--screenshot={SCREENSHOT}", "--window-size=1100,700", url)
    assert SCREENSHOT.stat().st_size > 10_000
    print(f"screenshot: {SCREENSHOT}")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")
def test_a_user_types_a_query_and_presses_enter(server, tmp_path):  # noqa: F811 - `server` is the fixture imported above
    """Driven over the DevTools protocol as a user would: the key typed into its box, the query
    typed into the search box, Enter pressed; then the rendered results are read."""
    websockets = pytest.importorskip("websockets.sync.client", reason="the DevTools protocol needs websockets")
    import json
    import socket
    import time

    httpx.post(server + "/documents", headers={"Authorization": "Bearer live-key"}, json={"documents": [
        {"id": "ops", "text": "Rotate the signing keys every month.",
         "metadata": {"lang": "en", "source": "https://example.org/ops?a=1&b=2"}}] + [
        {"id": f"more-{i}", "text": f"Note {i}: the signing keys of system {i} are kept apart.",
         "metadata": {"lang": "en"}} for i in range(14)]})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    browser = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            f"--remote-debugging-port={port}",
            f"--user-data-dir={tmp_path / 'profile'}",
            server + "/",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.time() + 30
        while True:
            try:
                pages = [t for t in httpx.get(f"http://127.0.0.1:{port}/json", timeout=2).json() if t["type"] == "page"]
                if pages:
                    break
            except httpx.TransportError:
                pass
            assert time.time() < deadline, "Chromium's DevTools endpoint did not come up"
            time.sleep(0.2)
        with websockets.connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:
            ids = iter(range(1, 10_000))

            def call(method, **params):
                n = next(ids)
                ws.send(json.dumps({"id": n, "method": method, "params": params}))
                while True:
                    reply = json.loads(ws.recv(timeout=30))
                    if reply.get("id") == n:
                        return reply.get("result", {})

            def evaluate(expression):
                return call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

            def page_state():
                return evaluate(
                    "JSON.stringify({focus: document.activeElement.id, q: document.getElementById('q').value, "
                    "key: document.getElementById('key').value.length, "
                    "status: document.getElementById('status').textContent, url: location.href})"
                )

            deadline = time.time() + 20
            while evaluate("document.readyState") != "complete":
                assert time.time() < deadline
                time.sleep(0.1)
            # A headless page may not hold the window's focus, and the search box's autofocus can land
            # late (Chromium runs it at a rendering step): emulate focus, and check each box holds what
            # was typed into it before Enter is pressed, so a lost keystroke fails here and says so.
            call("Page.bringToFront")
            call("Emulation.setFocusEmulationEnabled", enabled=True)
            for box, text in (("key", "live-key"), ("q", "rotate the signing keys")):
                deadline = time.time() + 10
                while evaluate(f"document.getElementById('{box}').value") != text:
                    assert time.time() < deadline, f"typing into #{box}: " + page_state()
                    evaluate(f"(b => {{ b.value = ''; b.focus(); }})(document.getElementById('{box}'))")
                    call("Input.insertText", text=text)
            assert evaluate("document.activeElement.id") == "q", page_state()
            for kind in ("keyDown", "keyUp"):
                call("Input.dispatchKeyEvent", type=kind, key="Enter", code="Enter", windowsVirtualKeyCode=13,
                     **({"text": "\r"} if kind == "keyDown" else {}))
            deadline = time.time() + 30
            while not evaluate("document.querySelectorAll('#results article.hit').length"):
                assert time.time() < deadline, "no results after Enter: " + page_state()
                time.sleep(0.2)
            # A web address as source is a link, its href intact (the & escaped in HTML, not doubled).
            first = "document.querySelector('#results article.hit .source a')"
            assert evaluate(f"{first}.textContent") == "https://example.org/ops?a=1&b=2"
            assert evaluate(f"{first}.href") == "https://example.org/ops?a=1&b=2"
            assert evaluate("document.querySelectorAll('#results mark').length") > 0
            assert "q=rotate+the+signing+keys" in evaluate("location.search")
            # Fifteen documents or more (the server's other tests add some): a first page of 10, then
            # "More results" adds the next page below it, none repeated; it goes when a page is short.
            assert evaluate("document.querySelectorAll('#results article.hit').length") == 10
            assert evaluate("document.getElementById('more').hidden") is False
            evaluate("document.getElementById('more').click()")
            deadline = time.time() + 30
            while evaluate("document.querySelectorAll('#results article.hit').length") < 15:
                assert time.time() < deadline, "no second page: " + page_state()
                time.sleep(0.2)
            sources = evaluate("[...document.querySelectorAll('#results .source')].map(e => e.textContent)")
            assert len(set(sources)) == len(sources) >= 15
            assert evaluate("document.getElementById('more').hidden") is (len(sources) < 20)
            # Lexical mode: BM25's matched words highlighted (the snippet's spans over the whole chunk).
            evaluate("document.getElementById('mode').value = 'lexical'; document.getElementById('form')"
                     ".requestSubmit()")
            deadline = time.time() + 30
            while "lexical" not in (evaluate("document.getElementById('status').textContent") or ""):
                assert time.time() < deadline, "no lexical results: " + page_state()
                time.sleep(0.2)
            marked = evaluate("[...document.querySelectorAll('#results mark')].map(e => e.textContent)")
            assert marked and set(marked) <= {"Rotate", "signing", "keys"}, marked
    finally:
        end_browser(browser)


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")
def test_hits_whose_title_or_language_is_a_number_are_shown(server, tmp_path):  # noqa: F811 - `server` is the fixture imported above
    """The page rendered nothing when a hit's title or lang was a number (escapeHtml called
    replace on it) while its status said "3 documents"."""
    response = httpx.post(server + "/documents", headers={"Authorization": "Bearer live-key"}, json={"documents": [
        {"id": "numbered", "text": "Quarterly zircon figures for the numbered ledger.",
         "metadata": {"title": 2024, "lang": 7}}]})
    assert response.status_code == 200, response.text
    url = f"{server}/?" + urllib.parse.urlencode({"q": "zircon ledger", "mode": "lexical"}) + "#key=live-key"
    dom = chromium(f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", url)
    results = dom[dom.index('<div id="results">'):]
    assert results.startswith('<div id="results"><article class="hit">'), dom[-3000:]
    assert "2024" in results and "zircon" in results
