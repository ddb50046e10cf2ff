"""`make bench`: each figure of the ingest-speed targets, measured, beside its target.

Generates seeded logs (benchmarks/logs.py) in BENCH_DIR (default bench-out/) and measures, each
in a fresh process (wall seconds, CPU seconds of all cores, peak RSS of that process tree):
  families     one gzip file of each family, BENCH_LINES lines (default 2,000,000): forensics
               ingest beside `zcat FILE | wc -l` on the same file in the same run, and below it
               what DuckDB alone takes to store the rows that ingest made, as a share of the
               time the target allows (benchmarks/floor.py store)
  parallel     the combined lines in BENCH_FILES files (default 8) on 2 workers, beside one zcat
               stream of the single file
  small        BENCH_SMALL_FILES CloudFront files (default 50,000) of BENCH_SMALL_LINES lines (50)
  downloaders  `forensics run` of a case with BENCH_REQUESTS requests (default 20,000,000) from
               BENCH_ADDRESSES distinct downloader addresses (default 1,000,000); smaller sizes
               are extrapolated linearly to the target's size, and the table says so
  memory       peak RSS of `forensics ingest` on one file of BENCH_RSS_LINES lines (default
               20,000,000) of each family: the family's BENCH_LINES file repeated end to end (gzip
               members, so one file; its lines repeat, which makes no difference to memory)
  floor        two reference points from DuckDB alone (benchmarks/floor.py)
BENCH_ONLY=families,small (for example) runs some of them. Not a test: numbers vary by machine
and load; the table prints the load average beside them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import logs  # noqa: E402  (beside this file)

WORK = Path(os.environ.get("BENCH_DIR", HERE.parent / "bench-out"))
LINES = int(os.environ.get("BENCH_LINES", "2000000"))
FILES = int(os.environ.get("BENCH_FILES", "8"))
SMALL_FILES = int(os.environ.get("BENCH_SMALL_FILES", "50000"))
SMALL_LINES = int(os.environ.get("BENCH_SMALL_LINES", "50"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "20000000"))
ADDRESSES = int(os.environ.get("BENCH_ADDRESSES", "1000000"))
RSS_LINES = int(os.environ.get("BENCH_RSS_LINES", "20000000"))
ONLY = set(filter(None, os.environ.get("BENCH_ONLY", "families,parallel,small,downloaders,memory,floor").split(",")))
FORENSICS = str(Path(sys.executable).with_name("forensics"))

# Ingest speed as a share of `zcat FILE | wc -l` on the same file (issue targets).
# Caddy stands for the other JSON lines: nested objects, float times and header lists.
RATIO_TARGETS = {
    "combined": 0.6, "nginx_main": 0.6, "cloudfront": 0.8, "aws_alb": 0.5, "aws_s3": 0.5, "cloudflare_logpush": 0.7,
    "caddy": 0.7,
}
RSS_TARGET_MB = 1024
SMALL_TARGET_FILES_S = 500
RUN_TARGET_S = 180
RUN_RSS_TARGET_MB = 3 * 1024
RUN_TARGET_REQUESTS, RUN_TARGET_ADDRESSES = 20_000_000, 1_000_000


@dataclass
class Measured:
    seconds: float
    cpu: float
    rss_mb: float


def measure(cmd: list[str], cwd: Path | None = None) -> Measured:
    """Wall time, CPU seconds and peak RSS of one command and the processes it waited for."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"benchmark step failed: {' '.join(cmd)}")
    return Measured(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


def zcat(path: Path) -> Measured:
    return measure(["sh", "-c", f"zcat '{path}' | wc -l"])


def forensics(command: str, case: Path, out: Path, *extra: str) -> Measured:
    shutil.rmtree(out, ignore_errors=True)
    return measure([FORENSICS, command, str(case), "--out", str(out), "-q", *extra])


@dataclass
class Row:
    what: str
    size: str
    m: Measured | None
    figure: str
    target: str
    met: bool | None


def families(rows: list[Row]) -> None:
    for name, target in RATIO_TARGETS.items():
        path = family_file(name)
        case = WORK / f"{name}.toml"
        case.write_text(f'[[sources]]\npath = "{path.name}"\nformat = "{name}"\n')
        floor = zcat(path)
        m = forensics("ingest", case, WORK / "case")
        ratio = floor.seconds / m.seconds
        rows.append(Row(f"zcat | wc -l, {name}", f"{LINES:,} lines", floor, "", "", None))
        rows.append(Row(
            f"ingest, {name}", f"{path.stat().st_size / 1e6:.0f} MB gz", m, f"{ratio:.2f}x zcat",
            f">= {target}x, RSS < 1 GB", ratio >= target and m.rss_mb < RSS_TARGET_MB,
        ))
        # What storing the same rows costs DuckDB alone, against the time the target allows.
        stored = store_only(WORK / "case" / "case.duckdb")
        allowed = floor.seconds / target
        rows.append(Row(
            "  of which DuckDB storing the rows alone", "", Measured(stored, float("nan"), float("nan")),
            f"{stored / allowed:.0%} of the {allowed:.2f} s allowed", "", None,
        ))


def family_file(name: str) -> Path:
    path = WORK / f"{name}-{LINES}.log.gz"
    if not path.exists():
        print(f"generating {LINES:,} {name} lines ...", flush=True)
        logs.write_family(path, name, LINES)
    return path


def memory(rows: list[Row]) -> None:
    times = max(1, round(RSS_LINES / LINES))
    for name in RATIO_TARGETS:
        path = family_file(name)
        big = WORK / f"{name}-{LINES}x{times}.log.gz"
        with open(big, "wb") as out:
            for _ in range(times):
                with open(path, "rb") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        case = WORK / f"{name}-memory.toml"
        case.write_text(f'[[sources]]\npath = "{big.name}"\nformat = "{name}"\n')
        try:
            m = forensics("ingest", case, WORK / "case")
        finally:
            big.unlink()
        rows.append(Row(f"ingest, {name}, peak memory", f"{LINES * times:,} lines", m, f"{m.rss_mb:,.0f} MB",
                        "RSS < 1 GB", m.rss_mb < RSS_TARGET_MB))


def store_only(case_db: Path) -> float:
    """Seconds DuckDB takes to store an ingested case's requests rows again (benchmarks/floor.py)."""
    out = subprocess.run(
        [sys.executable, str(HERE / "floor.py"), "store", str(case_db), str(WORK)],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return float(out[1])


def parallel(rows: list[Row]) -> None:
    one = WORK / f"combined-{LINES}.log.gz"
    if not one.exists():
        logs.write_family(one, "combined", LINES)
    many = WORK / f"split-{LINES}-{FILES}"
    if not many.exists():
        logs.write_split(many, "combined", LINES, FILES)
    case = WORK / "many.toml"
    case.write_text(f'[[sources]]\npath = "{many.name}/*.gz"\nformat = "combined"\n')
    floor = zcat(one)
    m = forensics("ingest", case, WORK / "case", "--workers", "2")
    ratio = floor.seconds / m.seconds
    rows.append(Row(f"ingest, {FILES} combined files, 2 workers", f"{LINES:,} lines", m,
                    f"{ratio:.2f}x one zcat", ">= 1.0x", ratio >= 1.0))


def small(rows: list[Row]) -> None:
    folder = WORK / f"small-{SMALL_FILES}x{SMALL_LINES}"
    if not folder.exists():
        print(f"generating {SMALL_FILES:,} CloudFront files ...", flush=True)
        logs.write_small_files(folder, SMALL_FILES, SMALL_LINES)
    case = WORK / "small.toml"
    case.write_text(f'[[sources]]\npath = "{folder.name}/*.gz"\nformat = "cloudfront"\n')
    m = forensics("ingest", case, WORK / "case")
    rate = SMALL_FILES / m.seconds
    rows.append(Row(f"ingest, {SMALL_FILES:,} small CloudFront files", f"{SMALL_LINES} lines each", m,
                    f"{rate:,.0f} files/s", f">= {SMALL_TARGET_FILES_S} files/s", rate >= SMALL_TARGET_FILES_S))


def downloaders(rows: list[Row]) -> None:
    folder = WORK / f"downloaders-{REQUESTS}-{ADDRESSES}"
    case = folder / "case.toml"
    if not case.exists():
        print(f"generating {REQUESTS:,} requests from {ADDRESSES:,} addresses ...", flush=True)
        logs.write_downloader_case(folder, REQUESTS, ADDRESSES)
    out = WORK / "run"
    try:
        m = forensics("run", case, out)
    except SystemExit as exc:
        # Said in the table rather than stopping the other figures.
        why = next((ln for ln in str(exc).splitlines() if "rror" in ln), "see the command's output")
        rows.append(Row("run, many downloaders", f"{REQUESTS:,} req, {ADDRESSES:,} addr", None,
                        f"FAILED: {why[:60]}", "< 3 min, RSS < 3 GB", False))
        return
    scale = max(RUN_TARGET_REQUESTS / REQUESTS, RUN_TARGET_ADDRESSES / ADDRESSES)
    report_mb = (out / "report.html").stat().st_size / 1e6
    size = f"{REQUESTS:,} req, {ADDRESSES:,} addr"
    if scale > 1:
        figure = f"~{m.seconds * scale / 60:.1f} min x{scale:g} (extrapolated)"
    else:
        figure = f"{m.seconds / 60:.1f} min"
    rows.append(Row("run, many downloaders", size, m, figure, "< 3 min, RSS < 3 GB",
                    m.seconds * max(scale, 1) < RUN_TARGET_S and m.rss_mb < RUN_RSS_TARGET_MB))
    rows.append(Row("  report.html", "", None, f"{report_mb:.1f} MB", "small (opens in a browser)", report_mb < 20))


def floor(rows: list[Row]) -> None:
    one = WORK / f"combined-{LINES}.log.gz"
    if not one.exists():
        logs.write_family(one, "combined", LINES)
    out = subprocess.run(
        [sys.executable, str(HERE / "floor.py"), str(one), str(WORK)], check=True, capture_output=True, text=True
    ).stdout.split()
    times = dict(zip(out[::2], map(float, out[1::2]), strict=True))
    for key, label in (("raw_strings", "reference: DuckDB raw text to a table"),
                       ("store_only", "reference: DuckDB storing typed rows only")):
        rows.append(Row(label, f"{LINES:,} lines", Measured(times[key], float("nan"), float("nan")), "", "", None))


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    load = os.getloadavg()
    rows: list[Row] = []
    for part, fn in (("families", families), ("parallel", parallel), ("small", small),
                     ("downloaders", downloaders), ("memory", memory), ("floor", floor)):
        if part in ONLY:
            fn(rows)
    print(f"\n{os.cpu_count()} cores; load average before the run {load[0]:.2f}, after {os.getloadavg()[0]:.2f}")
    head = f"{'what':<44} {'size':<26} {'seconds':>8} {'CPU s':>7} {'peak RSS':>9}  {'figure':<34} {'target':<26} met"
    print(head)
    print("-" * len(head))
    for r in rows:
        secs = f"{r.m.seconds:8.2f}" if r.m else " " * 8
        cpu = f"{r.m.cpu:7.2f}" if r.m and r.m.cpu == r.m.cpu else " " * 7
        rss = f"{r.m.rss_mb:6.0f} MB" if r.m and r.m.rss_mb == r.m.rss_mb else " " * 9
        met = "" if r.met is None else ("yes" if r.met else "NO")
        print(f"{r.what:<44} {r.size:<26} {secs} {cpu} {rss}  {r.figure:<34} {r.target:<26} {met}")
    if "floor" in ONLY:
        print("\nThe references are not ingests: the first has no types, line numbers or checks; the second "
              "is the\nstorage step alone, which every ingest into the canonical table pays (see benchmarks/floor.py).")


if __name__ == "__main__":
    main()
