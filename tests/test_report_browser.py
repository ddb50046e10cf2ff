"""The report in a real browser (issue 5): Debian's headless Chromium opens report.html from
file://, runs its script without a console error, requests nothing beyond the file, and takes a
screenshot (kept in the test's tmp folder for a person to look at).

Outside CI the test skips when no browser is installed; under CI (CI set) a missing browser is a
failure: .ci/run installs Debian's `chromium`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from forensics.casefile import load_case
from forensics.pipeline import run_case

REPO = Path(__file__).resolve().parent.parent
CANDIDATES = ("/usr/bin/chromium", "chromium", "chromium-browser")
# Keep the browser from phoning home and from reading the user's profile.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-extensions",
)


def _browser() -> str:
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("CI"):
        pytest.fail("CI is set but no Chromium is installed: .ci/run must install Debian's chromium")
    pytest.skip("no Chromium installed (apt-get install chromium); this test needs a real browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    run_case(load_case(REPO / "sample_logs" / "case.toml"), out)
    return out / "report.html"


def _chromium(browser: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    return subprocess.run(
        [browser, *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )


def _page_requests(net_log: Path) -> list[str]:
    """URLs requested on behalf of the page (its network isolation key is the file:// site), as
    opposed to the browser's own background traffic, which has other keys."""
    log = json.loads(net_log.read_text(encoding="utf-8", errors="replace") or "{}")
    types = {v: k for k, v in log.get("constants", {}).get("logEventTypes", {}).items()}
    urls = []
    for event in log.get("events", []):
        params = event.get("params") or {}
        if types.get(event.get("type")) != "URL_REQUEST_START_JOB" or "url" not in params:
            continue
        key = f"{params.get('network_isolation_key', '')} {params.get('site_for_cookies', '')}"
        if "file://" in key or str(params.get("initiator", "")).startswith(("file:", "null")):
            urls.append(params["url"])
    return urls


def test_report_opens_offline_without_errors(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    net_log = tmp_path / "netlog.json"
    res = _chromium(
        browser, tmp_path, "--enable-logging=stderr", "--v=0", f"--log-net-log={net_log}",
        "--virtual-time-budget=3000", "--dump-dom", report.as_uri(),
    )
    assert res.returncode == 0, res.stderr[-2000:]
    dom = res.stdout
    # The page loaded and its sorting script ran (it makes sortable headings focusable).
    assert "The answer" in dom and 'tabindex="0"' in dom
    # The limits of the evidence are in the answer box as the browser shows it.
    answer = dom[dom.index('id="answer"'):dom.index('id="timeline"')]
    assert "What the evidence cannot show" in answer and "Undated list:" in answer
    console = [ln for ln in res.stderr.splitlines() if ":CONSOLE" in ln]
    assert not console, "console messages:\n" + "\n".join(console)
    assert not re.search(r"Content Security Policy|Uncaught|net::ERR_", res.stderr), res.stderr[-2000:]
    leaving = [u for u in _page_requests(net_log) if not u.startswith("file:")]
    assert not leaving, f"the page requested {leaving}"


def test_report_screenshot(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    shot = tmp_path / "report.png"
    res = _chromium(browser, tmp_path, "--hide-scrollbars", "--window-size=1366,2000",
                    f"--screenshot={shot}", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000


def test_a_window_without_logs_is_a_blocking_warning_in_the_browser(write_case, tmp_path: Path) -> None:
    browser = _browser()
    log = "\n".join(
        f'198.51.100.9 - - [27/Nov/2022:10:{m:02d}:00 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "curl/8" "-"'
        for m in range(30)
    )
    case = write_case(
        [{"path": "access.log", "format": "nginx_main", "role": "origin"}],
        extra='[exposure]\nstart = "2022-11-28T19:00:00Z"\nend = "2022-11-28T23:00:00Z"\n\n'
              '[[resources]]\npath = "/files/roster.xlsx"\nsize = 1000\n',
        files={"access.log": log + "\n"},
    )
    run_case(load_case(case), tmp_path / "out")
    res = _chromium(browser, tmp_path, "--virtual-time-budget=3000", "--dump-dom",
                    (tmp_path / "out" / "report.html").as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    answer = res.stdout[res.stdout.index('id="answer"'):res.stdout.index('id="timeline"')]
    assert 'role="alert"' in answer and "Not a complete answer:" in answer
    assert "no log covers the window" in answer
