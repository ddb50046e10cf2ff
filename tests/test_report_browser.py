"""The report in a real browser (issue 5): Debian's headless Chromium opens report.html from
file://, runs its script without a console error, requests nothing beyond the file, and takes a
screenshot (kept in the test's tmp folder for a person to look at).

Outside CI the test skips when no browser is installed; under CI (CI set) a missing browser is a
failure: .ci/run installs Debian's `chromium`.
"""

from __future__ import annotations

import html
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


# Measures the page as laid out, from inside it: whether anything but a table or the chart sticks
# out of the page's width, whether the downloader table scrolls and says so, how many lines the
# tallest SHA-256 cell takes, what print rules apply. The result is posted to the frame page.
LAYOUT_CHECK = """
(function () {
  var r = {viewport: window.innerWidth, page: document.documentElement.scrollWidth, overflowing: []};
  document.querySelectorAll("body *").forEach(function (el) {
    var b = el.getBoundingClientRect();
    if (b.width && b.right > window.innerWidth + 1 && !el.closest(".scroll, table, .chart")) {
      r.overflowing.push(el.tagName + " " + el.outerHTML.slice(0, 80));
    }
  });
  r.wide_tables = [];
  document.querySelectorAll("table").forEach(function (t) {
    if (t.getBoundingClientRect().right > window.innerWidth + 1) { r.wide_tables.push(t.id || t.rows[0].textContent.trim().slice(0, 30)); }
  });
  var sc = document.querySelector(".scroll");
  r.table_scrolls = sc.scrollWidth > sc.clientWidth + 1;
  var hint = document.querySelector(".scroll-hint");
  r.hint_visible = !!hint && getComputedStyle(hint).display !== "none";
  r.hash_lines = 0;
  document.querySelectorAll("td.mono.small").forEach(function (td) {
    var range = document.createRange(); range.selectNodeContents(td);
    var tops = {}; Array.prototype.forEach.call(range.getClientRects(), function (q) { tops[Math.round(q.top)] = 1; });
    r.hash_lines = Math.max(r.hash_lines, Object.keys(tops).length);
  });
  r.text = document.body.innerText;
  r.heading_break_after = getComputedStyle(document.querySelector("h2")).breakAfter;
  r.nav_shown = getComputedStyle(document.querySelector("nav")).display !== "none";
  window.parent.postMessage(JSON.stringify(r), "*");
}());
"""
# The report in a frame of the given width (Chromium's own window is at least 500 pixels wide), and
# the measurements it posts.
FRAME = """<!doctype html><html><body style="margin:0">
<iframe src="{src}" width="{width}" height="{height}" style="border:0;display:block"></iframe>
<pre id="layout">waiting</pre>
<script>window.addEventListener("message", function (e) {{ document.getElementById("layout").textContent = e.data; }});</script>
</body></html>"""
# Sizes: a common laptop screen, a phone (390 CSS pixels, as an iPhone 14), and the printable
# width of an A4 page at Chromium's default margins (190 mm at 96 dpi), with the print rules on.
SIZES = {"laptop": (1366, False), "phone": (390, False), "print": (718, True)}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _framed(report: Path, tmp: Path, width: int, printed: bool, height: int) -> Path:
    page = report.read_text(encoding="utf-8")
    if printed:
        assert page.count("@media print") == 1
        page = page.replace("@media print", "@media all")  # print rules on screen
    (tmp / "report.html").write_text(page.replace("</body>", f"<script>{LAYOUT_CHECK}</script></body>"), encoding="utf-8")
    frame = tmp / "frame.html"
    frame.write_text(FRAME.format(src="report.html", width=width, height=height), encoding="utf-8")
    return frame


def _layout(browser: str, report: Path, tmp: Path, size: str) -> dict[str, object]:
    width, printed = SIZES[size]
    frame = _framed(report, tmp, width, printed, 900)
    res = _chromium(browser, tmp, f"--window-size={max(width, 500) + 40},900", "--virtual-time-budget=5000",
                    "--dump-dom", frame.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    m = re.search(r'<pre id="layout">(.*?)</pre>', res.stdout, re.S)
    assert m and m.group(1) != "waiting", "the layout check did not run"
    return json.loads(html.unescape(m.group(1)))


def _screenshot(browser: str, report: Path, tmp: Path, size: str) -> Path:
    """A screenshot of the top 3000 pixels at the size, kept in the test's folder to look at."""
    width, printed = SIZES[size]
    frame = _framed(report, tmp, width, printed, 3000)
    shot = tmp / f"report-{size}.png"
    res = _chromium(browser, tmp, "--hide-scrollbars", f"--window-size={max(width, 500)},3000",
                    "--virtual-time-budget=5000", f"--screenshot={shot}", frame.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    assert _png_size(shot.read_bytes()) == (max(width, 500), 3000)
    assert shot.stat().st_size > 50_000  # a page was drawn, not a blank window
    return shot


def test_report_on_a_laptop_screen(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    lay = _layout(browser, report, tmp_path, "laptop")
    assert lay["viewport"] == 1366
    assert lay["page"] <= 1366 and not lay["overflowing"] and not lay["wide_tables"], lay
    # At 1366 pixels the downloader table fits without scrolling, so no hint is shown.
    assert lay["table_scrolls"] is False and lay["hint_visible"] is False
    assert lay["hash_lines"] <= 3
    _screenshot(browser, report, tmp_path, "laptop")


def test_report_on_a_phone(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    lay = _layout(browser, report, tmp_path, "phone")
    assert lay["viewport"] == 390
    # Nothing widens the page; wide tables scroll inside it, and the downloader table says so.
    assert lay["page"] <= 390 and not lay["overflowing"], lay["overflowing"]
    assert lay["table_scrolls"] is True and lay["hint_visible"] is True
    assert "swipe it sideways" in str(lay["text"])
    # A SHA-256 wraps into a few lines, not one character per line.
    assert 2 <= int(lay["hash_lines"]) <= 4, lay["hash_lines"]  # type: ignore[call-overload]
    _screenshot(browser, report, tmp_path, "phone")


def test_report_printed(report: Path, tmp_path: Path) -> None:
    browser = _browser()
    lay = _layout(browser, report, tmp_path, "print")
    # Paper does not scroll: every table fits the page width.
    assert lay["page"] <= 718 and not lay["wide_tables"] and not lay["overflowing"], lay
    text = str(lay["text"])
    assert "Click a column heading" not in text and "swipe" not in text
    assert lay["nav_shown"] is False
    assert lay["heading_break_after"] == "avoid"  # a heading is not left alone at a page's foot
    _screenshot(browser, report, tmp_path, "print")
    # And it really prints: Chromium's own print path writes a PDF of several A4 pages.
    pdf = tmp_path / "report.pdf"
    res = _chromium(browser, tmp_path, "--no-pdf-header-footer", f"--print-to-pdf={pdf}", report.as_uri())
    assert res.returncode == 0, res.stderr[-2000:]
    data = pdf.read_bytes()
    assert data[:5] == b"%PDF-" and len(re.findall(rb"/Type\s*/Page\b", data)) > 3


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
