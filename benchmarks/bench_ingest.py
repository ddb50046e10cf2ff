"""`make bench`: ingest speed and memory beside `zcat FILE | wc -l` on the same file.

Generates a seeded combined-format log (BENCH_LINES lines, default 2,000,000), gzips it once,
then measures, each in a fresh process:
  1. `zcat FILE | wc -l` (the floor the issue compares against),
  2. `forensics ingest` of that one file,
  3. `forensics ingest` of the same lines split into BENCH_FILES files (default 8), 2 workers,
  4. two reference points from DuckDB alone (benchmarks/floor.py): its CSV reader loading the
     ten fields as raw text, and storing the already-typed lines into the canonical table,
and prints lines/s, CPU seconds (user + system, all cores) and the peak RSS of the ingest
process. Not a test: numbers vary by machine.
"""

from __future__ import annotations

import gzip
import os
import random
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORK = Path(os.environ.get("BENCH_DIR", HERE.parent / "bench-out"))
LINES = int(os.environ.get("BENCH_LINES", "2000000"))
FILES = int(os.environ.get("BENCH_FILES", "8"))
FORENSICS = str(Path(sys.executable).with_name("forensics"))

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


def generate(path: Path, n: int, seed: int = 20221128) -> None:
    rnd = random.Random(seed)
    ips = [f"{rnd.randint(1, 223)}.{rnd.randint(0, 255)}.{rnd.randint(0, 255)}.{rnd.randint(1, 254)}" for _ in range(5000)]
    with gzip.open(path, "wt", compresslevel=6) as out:
        buf = []
        for i in range(n):
            sec = i * 86400 // n
            ts = f"28/Nov/2022:{sec // 3600:02d}:{sec % 3600 // 60:02d}:{sec % 60:02d} -0500"
            buf.append(
                f'{rnd.choice(ips)} - - [{ts}] "GET {rnd.choice(PATHS)} HTTP/1.1" {rnd.choice((200, 200, 200, 304, 404, 206))} '
                f'{rnd.randint(0, 2_000_000)} "{rnd.choice(REFERERS)}" "{rnd.choice(AGENTS)}"\n'
            )
            if len(buf) == 50_000:
                out.write("".join(buf))
                buf.clear()
        out.write("".join(buf))


def split(src: Path, folder: Path, parts: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(src, "rt") as fh:
        lines = fh.readlines()
    size = len(lines) // parts + 1
    for i in range(parts):
        with gzip.open(folder / f"part{i:02d}.log.gz", "wt", compresslevel=6) as out:
            out.writelines(lines[i * size : (i + 1) * size])


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: str) -> tuple[float, float]:
    """Wall time and CPU seconds (user + system, all cores) of a shell command."""
    cpu = _cpu()
    start = time.perf_counter()
    subprocess.run(cmd, shell=True, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, _cpu() - cpu


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    one = WORK / f"combined-{LINES}.log.gz"
    if not one.exists():
        print(f"generating {LINES:,} lines (seeded) ...", flush=True)
        generate(one, LINES)
    many = WORK / f"split-{LINES}-{FILES}"
    if not many.exists():
        split(one, many, FILES)
    (WORK / "one.toml").write_text(f'[[sources]]\npath = "{one.name}"\nformat = "combined"\n')
    (WORK / "many.toml").write_text(f'[[sources]]\npath = "{many.name}/*.gz"\nformat = "combined"\n')

    zcat_s, zcat_cpu = timed(f"zcat {one} | wc -l")
    results: list[tuple[str, float, float | None, int | None]] = [("zcat FILE | wc -l", zcat_s, zcat_cpu, None)]
    for label, case, workers in (("forensics ingest, 1 file", "one.toml", 1), (f"forensics ingest, {FILES} files, 2 workers", "many.toml", 2)):
        out = WORK / "case"
        shutil.rmtree(out, ignore_errors=True)
        # A fresh interpreter per run so that ru_maxrss is this run's peak.
        cmd = (
            f"{sys.executable} -c \"import resource,subprocess,sys;"
            f"subprocess.run([{FORENSICS!r},'ingest',{str(WORK / case)!r},'--out',{str(out)!r},'-q','--workers','{workers}'],check=True);"
            f"print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\" 2> {WORK / 'rss.txt'}"
        )
        secs, cpu = timed(cmd)
        rss_kib = int((WORK / "rss.txt").read_text().split()[-1])
        results.append((label, secs, cpu, rss_kib))
    floor = subprocess.run(
        [sys.executable, str(HERE / "floor.py"), str(one), str(WORK)], check=True, capture_output=True, text=True
    ).stdout.split()
    times = dict(zip(floor[::2], map(float, floor[1::2]), strict=True))
    results.append(("reference: DuckDB raw text to a table", times["raw_strings"], None, None))
    results.append(("reference: DuckDB storing typed rows only", times["store_only"], None, None))
    print(f"\n{LINES:,} combined lines, gzip {one.stat().st_size / 1e6:.0f} MB, {os.cpu_count()} cores")
    print(f"{'what':<42} {'seconds':>8} {'CPU s':>7} {'lines/s':>12} {'vs zcat':>8} {'peak RSS':>10}")
    for label, secs, cpu_s, rss in results:
        rss_text = f"{rss / 1024:.0f} MB" if rss else "-"
        cpu_text = f"{cpu_s:.2f}" if cpu_s is not None else "-"
        print(
            f"{label:<42} {secs:>8.2f} {cpu_text:>7} {LINES / secs:>12,.0f} {zcat_s / secs:>7.2f}x {rss_text:>10}"
        )
    print(
        "\nThe references are not ingests: the first has no types, line numbers or checks; the second "
        "is the\nstorage step alone, which every ingest into the canonical table pays (see benchmarks/floor.py)."
    )


if __name__ == "__main__":
    main()
