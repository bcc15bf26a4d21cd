"""The search page at / of `lfm2-search serve`, in a real browser: headless Chromium (Debian's
chromium-headless-shell, which .ci/run installs) loads the page with a query in its URL, with the
API key on; the test reads the DOM the page's script built and saves a screenshot."""

import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import httpx
import pytest

from test_api_live import server  # noqa: F401 - the live-server fixture (uvicorn on 127.0.0.1, key "live-key")

CHROMIUM = next((shutil.which(c) for c in ("chromium-headless-shell", "chromium", "chromium-browser")
                 if shutil.which(c)), None)
SCREENSHOT = Path(__file__).resolve().parents[1] / "eval" / "out" / "search-page.png"


def chromium(*args: str) -> str:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=20000"]
    done = subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)
    return done.stdout


def test_the_page_and_its_data_without_a_browser(server):  # noqa: F811
    page = httpx.get(server + "/")
    assert page.status_code == 200 and "<title>lfm2-search</title>" in page.text
    assert httpx.get(server + "/facets").status_code == 401  # the data needs the key; the page asks for it
    facets = httpx.get(server + "/facets", headers={"Authorization": "Bearer live-key"}).json()
    assert facets["chunks"] >= 20 and "commit" in facets


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium (apt-get install chromium-headless-shell)")
def test_the_page_searches_and_highlights_in_a_real_browser(server, tmp_path):  # noqa: F811
    headers = {"Authorization": "Bearer live-key"}
    httpx.post(server + "/documents", headers=headers, json={"documents": [
        {"id": "ops", "text": "Rotate the signing keys every month.", "metadata": {"lang": "en", "team": "security"}},
        {"id": "ops-2", "text": "Rotate the signing keys of the build farm.", "metadata": {"lang": "en", "team": "infra"}}]})
    facets = httpx.get(server + "/facets", headers=headers).json()
    assert facets["fields"]["team"] == [["security", 1], ["infra", 1]] or sorted(facets["fields"]["team"]) == [["infra", 1], ["security", 1]]
    # The query, mode and a filter in the URL (a shareable link), the key in its fragment (never sent).
    url = f"{server}/?" + urllib.parse.urlencode({"q": "rotate the signing keys", "mode": "hybrid", "team": "security"}) \
        + "#key=live-key"
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
