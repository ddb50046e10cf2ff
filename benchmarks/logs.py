"""Seeded log generators for `make bench`: one per family the benchmark measures, many small
CloudFront files, and a case with many downloaders. The same arguments give the same bytes."""

from __future__ import annotations

import gzip
import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.1 Safari/605.1.15",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "curl/7.86.0",
    "python-requests/2.28.1",
]
PATHS = ["/", "/news/2022/11/report", "/sites/default/files/documents/2022/annual.pdf", "/search?q=asylum+policy",
         "/themes/agency/css/site.css", "/themes/agency/js/app.js", "/images/logo.png"]
REFERERS = ["-", "https://www.google.com/", "https://www.agency.gov/", "https://t.co/abc123"]
STATUSES = (200, 200, 200, 304, 404, 206)
CF_FIELDS = (
    "#Fields: date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header cs-protocol "
    "cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher x-edge-response-result-type "
    "cs-protocol-version fle-status fle-encrypted-fields c-port time-to-first-byte x-edge-detailed-result-type "
    "sc-content-type sc-content-len sc-range-start sc-range-end"
)
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _Line:
    """Random parts of a request, drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)
        rnd = self.rnd
        self.ips = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}"
                    for _ in range(5000)]

    def parts(self, i: int, n: int) -> tuple[str, int, str, int, int, str, str]:
        rnd = self.rnd
        sec = i * 86400 // max(n, 1)
        return (rnd.choice(self.ips), sec, rnd.choice(PATHS), rnd.choice(STATUSES), rnd.randint(0, 2_000_000),
                rnd.choice(REFERERS), rnd.choice(AGENTS))


def _clock(sec: int) -> tuple[int, int, int]:
    return sec // 3600, sec % 3600 // 60, sec % 60


def _combined(g: _Line, i: int, n: int) -> str:
    ip, sec, path, status, size, ref, ua = g.parts(i, n)
    h, m, s = _clock(sec)
    return f'{ip} - - [28/Nov/2022:{h:02d}:{m:02d}:{s:02d} -0500] "GET {path} HTTP/1.1" {status} {size} "{ref}" "{ua}"'


def _nginx_main(g: _Line, i: int, n: int) -> str:
    xff = g.rnd.choice(("-", "-", "203.0.113.77", "203.0.113.77, 198.51.100.4"))
    return _combined(g, i, n) + f' "{xff}"'


def _cloudfront(g: _Line, i: int, n: int) -> str:
    ip, sec, path, status, size, ref, ua = g.parts(i, n)
    h, m, s = _clock(sec)
    path, _, query = path.partition("?")
    return "\t".join((
        "2022-11-28", f"{h:02d}:{m:02d}:{s:02d}", "HEL51-P1", str(size), ip, "GET", "d3abc.cloudfront.net", path,
        str(status), ref, ua.replace(" ", "%20"), query or "-", "-", "Miss", f"r{i:012d}EXAMPLE==", "www.agency.gov",
        "https", "231", "0.087", "-", "TLSv1.3", "TLS_AES_128_GCM_SHA256", "Miss", "HTTP/1.1", "-", "-",
        str(40000 + i % 20000), "0.087", "Miss", "text/html", str(size), "-", "-",
    ))


def _aws_alb(g: _Line, i: int, n: int) -> str:
    ip, sec, path, status, size, _ref, ua = g.parts(i, n)
    h, m, s = _clock(sec)
    ts = f"2022-11-28T{h:02d}:{m:02d}:{s:02d}.{i % 1000000:06d}Z"
    return (
        f'https {ts} app/my-loadbalancer/50dc6c495c0c9188 {ip}:{40000 + i % 20000} 10.0.0.1:80 0.000 0.001 0.000 '
        f'{status} {status} 34 {size} "GET https://www.agency.gov:443{path} HTTP/1.1" "{ua}" '
        "ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/"
        f'my-targets/73e2d6bc24d8a067 "Root=1-58337262-{i:024x}" "www.agency.gov" "-" 0 {ts} "forward" "-" "-" '
        f'"10.0.0.1:80" "{status}" "-" "-" "TID_{i:08x}" "-"'
    )


def _aws_s3(g: _Line, i: int, n: int) -> str:
    ip, sec, path, status, size, ref, ua = g.parts(i, n)
    h, m, s = _clock(sec)
    key = path.lstrip("/").partition("?")[0] or "index.html"
    owner = "79a59df900b949e55d96a1e698fbacedfd6e09d98eacf8f8d5218e7cd47ef2be"
    return (
        f"{owner} awsexamplebucket1 [28/Nov/2022:{h:02d}:{m:02d}:{s:02d} +0000] {ip} {owner} {i:016X} "
        f'REST.GET.OBJECT {key} "GET /awsexamplebucket1/{key} HTTP/1.1" {status} - {size} {size} 70 10 "{ref}" '
        f'"{ua}" - s9lzHYrFp76ZVxRcpX9+5cjAnEH2ROuNkd2BHfIa6UkFVdtjf5mKR3/eTPFvsiP/XV/VLi31234= SigV4 '
        "ECDHE-RSA-AES128-GCM-SHA256 AuthHeader awsexamplebucket1.s3.us-west-1.amazonaws.com TLSV1.2 - -"
    )


def _cloudflare(g: _Line, i: int, n: int) -> str:
    ip, sec, path, status, size, ref, ua = g.parts(i, n)
    return json.dumps({
        "ClientIP": ip, "ClientRequestHost": "www.agency.gov", "ClientRequestMethod": "GET",
        "ClientRequestURI": path, "ClientRequestUserAgent": ua, "ClientRequestReferer": "" if ref == "-" else ref,
        "EdgeStartTimestamp": 1669611600_000000000 + sec * 1_000_000_000 + i % 1000, "EdgeResponseBytes": size + 480,
        "EdgeResponseBodyBytes": size, "EdgeResponseStatus": status, "RayID": f"{i:016x}",
        "CacheCacheStatus": "miss", "EdgeColoCode": "SEA", "ClientSrcPort": 40000 + i % 20000,
    }, separators=(",", ":"))


def _caddy(g: _Line, i: int, n: int) -> str:
    """Caddy's access record: a float time and duration, the request as a nested object with
    header lists (the shape that costs the JSON reader most a line)."""
    ip, sec, path, status, size, ref, ua = g.parts(i, n)
    return json.dumps({
        "level": "info", "ts": 1669611600 + sec + (i % 1000) / 1000 + 0.0004, "logger": "http.log.access.log0",
        "msg": "handled request",
        "request": {"remote_ip": ip, "remote_port": str(40000 + i % 20000), "client_ip": ip, "proto": "HTTP/2.0",
                    "method": "GET", "host": "www.agency.gov", "uri": path,
                    "headers": {"User-Agent": [ua], "Referer": [ref], "Accept": ["*/*"]}},
        "bytes_read": 0, "user_id": "", "duration": 0.0101 + (i % 97) / 1000, "size": size, "status": status,
        "resp_headers": {"Content-Type": ["application/pdf"], "Content-Length": [str(size)]},
    }, separators=(",", ":"))


# format name -> (line maker, header lines)
FAMILIES: dict[str, tuple[Callable[[_Line, int, int], str], list[str]]] = {
    "combined": (_combined, []),
    "nginx_main": (_nginx_main, []),
    "cloudfront": (_cloudfront, ["#Version: 1.0", CF_FIELDS]),
    "aws_alb": (_aws_alb, []),
    "aws_s3": (_aws_s3, []),
    "cloudflare_logpush": (_cloudflare, []),
    "caddy": (_caddy, []),
}


def _batches(make: Callable[[_Line, int, int], str], n: int, seed: int) -> Iterator[str]:
    g = _Line(seed)
    buf: list[str] = []
    for i in range(n):
        buf.append(make(g, i, n))
        if len(buf) == 50_000:
            yield "\n".join(buf) + "\n"
            buf.clear()
    if buf:
        yield "\n".join(buf) + "\n"


def write_family(path: Path, name: str, n: int, seed: int = 20221128) -> None:
    """n lines of format `name`, gzip level 6 (what servers' log rotation writes)."""
    make, header = FAMILIES[name]
    with gzip.open(path, "wt", compresslevel=6) as out:
        if header:
            out.write("\n".join(header) + "\n")
        for text in _batches(make, n, seed):
            out.write(text)


def write_split(folder: Path, name: str, n: int, parts: int, seed: int = 20221128) -> None:
    """The same n lines as write_family, in `parts` files (each with the format's header)."""
    make, header = FAMILIES[name]
    folder.mkdir(parents=True, exist_ok=True)
    size = n // parts + 1
    g = _Line(seed)
    for p in range(parts):
        lines = [make(g, i, n) for i in range(p * size, min(n, (p + 1) * size))]
        with gzip.open(folder / f"part{p:02d}.log.gz", "wt", compresslevel=6) as out:
            out.write("".join(h + "\n" for h in header) + "\n".join(lines) + "\n")


def write_small_files(folder: Path, files: int, lines: int, seed: int = 7) -> None:
    """`files` CloudFront standard logs of `lines` lines each, as CloudFront names them."""
    folder.mkdir(parents=True, exist_ok=True)
    g = _Line(seed)
    head = "#Version: 1.0\n" + CF_FIELDS + "\n"
    for f in range(files):
        body = "\n".join(_cloudfront(g, f * lines + i, files * lines) for i in range(lines)) + "\n"
        hour = f * 24 // max(files, 1)
        (folder / f"E2BENCH.2022-11-28-{hour:02d}.{f:08X}.gz").write_bytes(
            gzip.compress((head + body).encode(), compresslevel=6, mtime=0)
        )


RESOURCE = "/sites/default/files/documents/2022/detention-roster.xlsx"
RESOURCE_SIZE = 1572864


def write_downloader_case(folder: Path, requests: int, addresses: int, seed: int = 14) -> Path:
    """A case whose leaked file was fetched by `addresses` distinct addresses (each at least once;
    complete, partial ranges and cut transfers) among `requests` combined-format requests, half of
    them for other pages. Returns the case file."""
    folder.mkdir(parents=True, exist_ok=True)
    rnd = random.Random(seed)
    agents = [
        f"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{100 + k % 30}.0.{k}.0"
        " Safari/537.36" for k in range(1500)
    ] + AGENTS
    ips = [f"{(k >> 16) % 223 + 1}.{(k >> 8) & 255}.{k & 255}.{rnd.randint(1, 254)}" for k in range(addresses)]
    with gzip.open(folder / "access.log.gz", "wt", compresslevel=6) as out:
        buf: list[str] = []
        for i in range(requests):
            sec = i * 5 * 3600 // requests
            h, m, s = _clock(14 * 3600 + sec)
            # Every address asks for the file at least once: the first 2 x addresses requests
            # cycle through them.
            ip = ips[i % addresses] if i < 2 * addresses else ips[rnd.randrange(addresses)]
            r = rnd.random()
            if (i < 2 * addresses and i % 2 == 0) or r < 0.5:
                path, status, size = RESOURCE, 200, RESOURCE_SIZE
                if r < 0.1:
                    status, size = 206, rnd.randint(1, RESOURCE_SIZE)
                elif r < 0.15:
                    size = rnd.randint(0, RESOURCE_SIZE - 1)
            else:
                path, status, size = rnd.choice(PATHS), 200, rnd.randint(100, 50000)
            buf.append(f'{ip} - - [28/Nov/2022:{h:02d}:{m:02d}:{s:02d} -0500] "GET {path} HTTP/1.1" {status} {size} '
                       f'"-" "{agents[i % len(agents)]}"\n')
            if len(buf) >= 100_000:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))
    case = folder / "case.toml"
    case.write_text(
        '[case]\nname = "bench: many downloaders"\ntimezone = "America/New_York"\n\n'
        '[[sources]]\npath = "access.log.gz"\nformat = "combined"\n\n'
        '[exposure]\nstart = "2022-11-28T14:00:00-05:00"\nend = "2022-11-28T19:30:00-05:00"\n\n'
        f'[[resources]]\npath = "{RESOURCE}"\nsize = {RESOURCE_SIZE}\n'
    )
    return case
