"""The `forensics` command: a thin typer layer over the library.

Each command validates its arguments, makes one library call and renders the result. Errors the
investigator can fix are printed as one line `Error: ...` with exit code 1; anything else is an
internal error, reported without a traceback unless --debug is given.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from forensics import __version__
from forensics.errors import ForensicsError, Interrupted, QueryError
from forensics.terminal import printable, printable_text


class _Command(typer.core.TyperCommand):
    """Help as the investigator reads it: arguments by name with no Python type (typer shows
    `<list[Path]>`), and options the signature cannot declare (query's repeatable
    `-p NAME VALUE`, read from the extra arguments because typer has no two-value repeatable option)."""

    extra_options: tuple[tuple[str, str], ...] = ()

    @staticmethod
    def _arg_name(param: Any) -> str:
        return str(param.metavar or (param.name or "").upper())

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        pieces = [self.options_metavar or ""]
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = self._arg_name(param) + ("..." if param.nargs != 1 else "")
                pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: Any, formatter: Any) -> None:
        args, opts = [], []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                args.append((self._arg_name(param), getattr(param, "help", None) or ""))
            else:
                record = param.get_help_record(ctx)
                if record is not None:
                    opts.append(record)
        opts[-1:-1] = self.extra_options  # before --help
        if args:
            with formatter.section("Arguments"):
                formatter.write_dl(args)
        if opts:
            with formatter.section("Options"):
                formatter.write_dl(opts)


class _QueryCommand(_Command):
    extra_options = (
        ("-p, --param NAME VALUE", "A parameter of the query (`forensics queries` lists them); repeat for more."),
    )


def _version(value: bool) -> None:
    if value:
        out.print(f"forensics {__version__}")
        raise typer.Exit()


# Plain help (rich_markup_mode=None): rich markup would eat bracketed words such as [enrich], and
# click rewraps each paragraph to the terminal; an example stays on its own line after \b.
class _App(typer.Typer):
    """A typer app whose commands use _Command's help unless they name another class."""

    def command(self, *args: Any, cls: Any = None, **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or _Command, **kwargs)


WORKERS_HELP = "Files read at once, and chunks of one large file parsed at once (one per core is right)."

app = _App(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"max_content_width": 100, "help_option_names": ["-h", "--help"]},
)
# Markup off: messages carry paths and log text, whose brackets must print as they are. Styled
# labels go through _say.
err = Console(stderr=True, highlight=False, markup=False)
out = Console(highlight=False, markup=False)
DEBUG = os.environ.get("FORENSICS_DEBUG") == "1"


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", "-V", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Access-log forensics for accidental data exposures: load web-server and CDN logs into a case
    database and find who obtained a leaked file.

    \b
    Start with: forensics run sample_logs/case.toml --out case-out
    """


def _say(console: Console, label: str, style: str, text: str) -> None:
    """A styled label and plain text (never parsed as markup; control characters escaped)."""
    console.print(Text.assemble((label, style), " ", printable_text(text)), soft_wrap=True)


def _show(console: Console, text: str, end: str = "\n") -> None:
    """Text that may carry log data (rows, paths, user agents): control characters escaped, so
    an ESC sequence in a log line cannot act on the investigator's terminal."""
    console.print(printable_text(text), soft_wrap=True, markup=False, highlight=False, end=end)


def _fail(exc: BaseException) -> None:
    if isinstance(exc, ForensicsError):
        _say(err, "Interrupted:" if isinstance(exc, Interrupted) else "Error:", "bold red", f"{exc.render()}")
        raise typer.Exit(exc.exit_code)
    if DEBUG:
        raise exc
    _say(
        err,
        "Internal error:",
        "bold red",
        f"{type(exc).__name__}: {exc}. This is a bug in forensics; "
        "rerun with FORENSICS_DEBUG=1 for details and report it.",
    )
    raise typer.Exit(70)


class _Bar:
    """Progress for long loads: files, lines and throughput."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.lines = 0
        # Lines read one by one in Python (exact path, JSON) rather than by a columnar reader.
        self.slow_lines = 0
        self.start = time.monotonic()
        self.progress: Progress | None = None
        self.task: Any = None
        self.last_file_done: float | None = None

    def load_seconds(self) -> float:
        """From the start of the command to the last file read: the speed of loading, not of the
        investigation and report that follow it in `run`."""
        end = self.last_file_done if self.last_file_done is not None else time.monotonic()
        return end - self.start

    def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event == "file_done":
            self.last_file_done = time.monotonic()
        if not self.enabled:
            return
        if event == "plan":
            self.progress = Progress(
                TextColumn("[bold]ingest[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn(
                    "files  {task.fields[lines]:,} lines  {task.fields[rate]:,.0f} lines/s  "
                    "{task.fields[slow]:.0%} on the slow path"
                ),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            self.task = self.progress.add_task("ingest", total=info["files"], lines=0, rate=0.0, slow=0.0)
            self.progress.start()
        elif self.progress is None:
            return
        elif event == "chunk":
            self.lines += info["lines"]
            self.slow_lines += info.get("slow", 0)
            rate = self.lines / max(time.monotonic() - self.start, 1e-6)
            slow = self.slow_lines / self.lines if self.lines else 0.0
            self.progress.update(self.task, lines=self.lines, rate=rate, slow=slow)
        elif event == "file_done":
            self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


SHOW_SPEED_AFTER = 10.0  # seconds of loading


def _print_ingest(report: Any, elapsed: float) -> None:
    t = report.totals
    for w in report.warnings:
        _say(err, "Warning:", "yellow", f"{w}")
    if report.already_loaded:
        n = len(report.already_loaded)
        _show(out, f"Already in the case, unchanged (same SHA-256 and settings): {n} file{'s' if n != 1 else ''}")
    for row in report.custody:
        if row.status == "duplicate":
            _say(err, "Duplicate:", "yellow",
                 f"{row.planned.display_path}: same bytes as {row.duplicate_path}; recorded, not loaded twice")
    for old, new in report.renamed:
        _say(err, "Renamed:", "yellow", f"{old} is now {new} (same bytes and settings); recorded, not reloaded")
    for p in report.pruned:
        _say(err, "Pruned:", "yellow", f"{p}: no longer in the case file; its rows were removed (--prune)")
    for r in report.loaded:
        if r.action != "new":
            _say(err, "Reloaded:" if r.action != "append" else "Grown:", "yellow",
                 f"{r.planned.display_path}: {r.reason}")
    for r in report.loaded:
        if r.truncated or r.note:
            _say(err, "Note:", "yellow", f"{r.planned.display_path}: {r.note}")
        if r.lines_rejected:
            ex = "; ".join(f"line {n}: {why}" for n, why in r.reject_examples[:2])
            _say(
                err,
                "Rejected:",
                "yellow",
                f"{r.planned.display_path}: {r.lines_rejected:,} lines ({ex}); see the rejects table",
            )
    files = f"{t['files']} file" + ("" if t["files"] == 1 else "s")
    # The speed of a load of a few seconds says nothing (and would make the demo's output differ
    # from run to run); for a long one it tells whether the next case fits in the time there is.
    speed = ""
    if elapsed >= SHOW_SPEED_AFTER:
        speed = f" ({elapsed:,.0f} s, {t['lines_read'] / elapsed:,.0f} lines/s)"
    out.print(
        f"Loaded {files}: {t['lines_read']:,} lines read, {t['lines_parsed']:,} parsed "
        f"({t['requests']:,} requests), "
        f"{t['lines_rejected']:,} rejected, {t['lines_skipped']:,} skipped{speed}",
        soft_wrap=True,
    )
    out.print(f"Case database: {report.database}")
    out.print(f"Manifest:      {report.manifest}")


_PRUNE_HELP = (
    "Remove from the case the rows of files the case file no longer names (without it, the run stops "
    "and names them)."
)
_REPLACE_HELP = (
    "Reload a file whose content changed since it was loaded and is not the old content plus new lines "
    "(without it, the run stops and names the file)."
)


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _interrupted(bar: _Bar) -> None:
    """Ctrl-C outside the loading itself (checking inputs, the investigation, the outputs)."""
    bar.stop()
    _say(
        err,
        "Interrupted:",
        "bold red",
        "every file in the case database was loaded whole; the outputs were not all written. "
        "Run the same command again to finish the case.",
    )
    raise typer.Exit(130)


@app.command()
def ingest(
    case_file: Annotated[Path, typer.Argument(metavar="CASE_FILE", help="The case file (TOML) naming the sources.")],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for case.duckdb and manifest.json.")
    ],
    workers: Annotated[int, typer.Option(metavar="N", help=WORKERS_HELP)] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    prune: Annotated[bool, typer.Option("--prune", help=_PRUNE_HELP)] = False,
    replace: Annotated[bool, typer.Option("--replace", help=_REPLACE_HELP)] = False,
) -> None:
    """Load the logs into DIR/case.duckdb, every line accounted for.

    Every line ends up either as a row of `requests` or counted in `rejects` (with its reason) or
    `skipped_lines` (W3C directives, blank lines). Each file is loaded whole or not at all.
    Running it again loads only what is missing or changed: new files, files whose settings
    changed, and the new lines of logs that grew. Ctrl-C stops within seconds; run the same
    command again to finish.

    \b
    Example: forensics ingest sample_logs/case.toml --out case-out
    """
    from forensics.casefile import load_case
    from forensics.ingest import ingest as run_ingest

    signal.signal(signal.SIGTERM, _on_sigterm)
    bar = _Bar(enabled=not quiet and err.is_terminal)
    try:
        case = load_case(case_file)
        report = run_ingest(case, out_dir, progress=bar, workers=workers, prune=prune, replace=replace)
    except KeyboardInterrupt:
        _interrupted(bar)
        return
    except BaseException as exc:
        bar.stop()
        if isinstance(exc, typer.Exit):
            raise
        _fail(exc)
        return
    bar.stop()
    _print_ingest(report, bar.load_seconds())


@app.command()
def run(
    case_file: Annotated[
        Path, typer.Argument(metavar="CASE_FILE", help="The case file (TOML): sources, exposure, resources, proxies.")
    ],
    out_dir: Annotated[
        Path, typer.Option("--out", "-o", metavar="DIR", help="Folder for the case database and outputs.")
    ],
    workers: Annotated[int, typer.Option(metavar="N", help=WORKERS_HELP)] = 2,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    db: Annotated[
        list[Path] | None,
        typer.Option(
            "--db",
            metavar="PATH",
            help="IP database (.mmdb: MaxMind, DB-IP, IPinfo) or a folder of them; repeatable. "
            "Added to [enrich] databases; without any, those in geoipupdate's default places are used.",
        ),
    ] = None,
    rdns: Annotated[
        bool,
        typer.Option(help="Check crawler claims with forward-confirmed reverse DNS (sends DNS queries)."),
    ] = False,
    prune: Annotated[bool, typer.Option("--prune", help=_PRUNE_HELP)] = False,
    replace: Annotated[bool, typer.Option("--replace", help=_REPLACE_HELP)] = False,
    engine: Annotated[
        str,
        typer.Option(
            metavar="NAME",
            help="Where the load and the stages run: duckdb (this machine, the default) or spark (a Spark "
            "cluster or local Spark; needs the spark extra and Java 17).",
        ),
    ] = "duckdb",
    master: Annotated[
        str | None,
        typer.Option(metavar="URL", help="Spark master (local[4], yarn, spark://host:7077); with --engine spark."),
    ] = None,
    warehouse: Annotated[
        str | None,
        typer.Option(
            metavar="URI",
            help="Where Spark writes its Parquet tables (file:///..., s3://bucket/prefix); default DIR/warehouse.",
        ),
    ] = None,
) -> None:
    """Run the investigation: downloader list, report, case database.

    Ingests the logs, finds every request for the leaked resource in the exposure window and
    margin, resolves the real client behind trusted proxies and the CDN, decides what each client
    received, enriches the addresses (location, network, crawler, cloud, Tor) and writes
    downloaders.csv/.parquet/.json/.xlsx, operator_requests.csv/.xlsx (requests to network
    operators), report.html, case.duckdb and manifest.json into DIR.

    With --engine spark the logs are loaded and the stages run on Spark (one task per log file,
    Parquet tables); the results come back into DIR/case.duckdb and every output is the same.
    A source's path may then be a URI Spark's file system layer reads (s3://, s3a://, hdfs://,
    abfss://, gs://, file://); a file read from a URI may be at most 2 GiB.

    \b
    Example: forensics run sample_logs/case.toml --out case-out
    """
    from forensics.casefile import load_case
    from forensics.pipeline import run_case

    signal.signal(signal.SIGTERM, _on_sigterm)
    bar = _Bar(enabled=not quiet and err.is_terminal)
    try:
        case = load_case(case_file)
        report = run_case(
            case, out_dir, progress=bar, workers=workers, databases=db or [], rdns=rdns, prune=prune,
            replace=replace, engine=engine, master=master, warehouse=warehouse,
        )
    except KeyboardInterrupt:
        _interrupted(bar)
        return
    except BaseException as exc:
        bar.stop()
        if isinstance(exc, typer.Exit):
            raise
        _fail(exc)
        return
    bar.stop()
    _print_ingest(report.ingest, bar.load_seconds())
    for w in report.warnings:
        _say(err, "Warning:", "yellow", f"{w}")
    # The limits of the evidence come right before the answer they qualify.
    for lim in report.limits:
        if lim.severity == "blocking":
            _say(err, "Not a complete answer:", "bold red", lim.text())
        elif lim.severity == "note":
            _say(err, "Note:", "cyan", lim.text())
        else:
            _say(err, "Warning:", "yellow", lim.text())
    h = report.headline
    counts = (
        f"{h.get('complete', 0)} complete, {h.get('partial', 0)} partial, "
        + (f"{h['undetermined']} undetermined (size unknown), " if h.get("undetermined") else "")
        + f"{h.get('failed', 0)} tried and failed, {h.get('headers_only', 0)} headers only"
    )
    n = sum(lim.severity != "note" for lim in report.limits)
    if n:
        counts += f" ({n} limit{'s' if n != 1 else ''} of the evidence: see above)"
    _say(out, "Who obtained the file:", "bold", counts)
    width = max((len(name) for name in report.outputs), default=0)
    for name, path in report.outputs.items():
        out.print(f"  {name:<{width}}  {path}", soft_wrap=True)


lists_app = _App(
    help="Published network lists: crawlers, clouds, Tor exits.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(lists_app, name="lists")


@lists_app.command("update")
def lists_update(
    folder: Annotated[
        Path, typer.Argument(metavar="FOLDER", help="Folder to keep the lists in; name it in [enrich] lists.")
    ],
    tor_month: Annotated[
        list[str] | None,
        typer.Option(metavar="YYYY-MM", help="Also fetch Tor's exit-list archive of this month (YYYY-MM); repeatable."),
    ] = None,
) -> None:
    """Download the published crawler, cloud and Tor exit lists.

    The lists go into FOLDER, and when and from where each came into FOLDER/lists.json. Needs a
    network: run it on the day of the investigation, or fetch the archives of the incident's
    month with --tor-month.

    \b
    Example: forensics lists update case/lists --tor-month 2022-11
    """
    from forensics.enrich.lists import update_lists

    try:
        rep = update_lists(folder, tor_months=tuple(tor_month or ()))
    except Exception as exc:
        _fail(exc)
        return
    for name, url in sorted(rep.fetched.items()):
        out.print(f"fetched {name} from {url}", soft_wrap=True)
    for name, why in sorted(rep.failed.items()):
        _say(err, "Not fetched:", "yellow", f"{name}: {why}")
    out.print(f"Recorded in {rep.record}", soft_wrap=True)


@app.command()
def formats() -> None:
    """List the log formats read, with their specifications.

    One line each: name, family, title and spec.
    Use a name as `format = "<name>"` in a [[sources]] table, or `format = "auto"` to detect it.
    A site's own layout can be given as "apache:<LogFormat string>" or "nginx:<log_format string>".

    \b
    Example: forensics formats
    """
    from forensics.formats import builtin_formats

    for f in sorted(builtin_formats().values(), key=lambda f: (f.family, f.name)):
        out.print(f.one_line(), soft_wrap=True)


@app.command()
def detect(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Log files to look at (plain or compressed).")],
    rows: Annotated[int, typer.Option(metavar="N", help="Parsed rows to show per file.")] = 3,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", "-f", metavar="NAME", help="Check this format (from `forensics formats`) instead of detecting."
        ),
    ] = "auto",
) -> None:
    """Name each file's format and show a few parsed rows.

    Use it before a long load: the rows show what the columns will hold.

    \b
    Example: forensics detect sample_logs/origin/access.log
    """
    from forensics.inspect import detect_files

    failed = 0
    try:
        for res in detect_files(files, fmt, rows):
            if res.error is not None:
                failed += 1
                _say(err, "Error:", "bold red", res.error.render())
                continue
            out.print(Text.assemble((f"{printable(str(res.path))}:", "bold"), " ", printable_text(res.summary)),
                      soft_wrap=True)
            for line in res.rows:
                _show(out, f"  {line}")
    except Exception as exc:
        _fail(exc)
    if failed:
        _say(err, "Not read:", "bold red", f"{failed} of {len(files)} files (see above); the others were read")
        raise typer.Exit(1)


@app.command()
def version() -> None:
    """Print the versions of forensics and of its main libraries.

    The libraries named (DuckDB, polars, Python) are those that shape the results.

    \b
    Example: forensics version
    """
    import duckdb
    import polars

    out.print(f"forensics {__version__} (duckdb {duckdb.__version__}, polars {polars.__version__}, "
              f"python {sys.version.split()[0]})")


@app.command()
def report(
    case_dir: Annotated[Path, typer.Argument(metavar="CASE_DIR", help="The folder written by `forensics run`.")],
) -> None:
    """Write CASE_DIR/report.html again from an existing case.

    The incident summary for leadership, counsel or a regulator (answer, timeline, downloaders,
    breakdowns, data quality, method, chain of custody). One self-contained file: it opens
    offline and prints.

    \b
    Example: forensics report case-out
    """
    from forensics.report import write_report

    try:
        path = write_report(case_dir)
    except Exception as exc:
        _fail(exc)
        return
    out.print(f"Report: {path}", soft_wrap=True)


@app.command()
def queries() -> None:
    """List the named queries: parameters and what each answers.

    They live in the package's queries/*.sql files.
    Run one with `forensics query NAME --case CASE_DIR -p PARAM VALUE`.

    \b
    Example: forensics queries
    """
    from forensics.explore import list_queries

    for q in list_queries():
        params = ", ".join(f"{p} (optional)" if p in q.optional else p for p in q.params) or "no parameters"
        out.print(Text.assemble((q.name, "bold"), " ", (f"({params})", "dim")), soft_wrap=True)
        out.print(f"  {q.purpose}", soft_wrap=True, markup=False)


def _pairs(args: list[str]) -> dict[str, str]:
    """`-p NAME VALUE` pairs (typer has no repeatable two-value option)."""
    params: dict[str, str] = {}
    rest = list(args)
    while rest:
        flag = rest.pop(0)
        if flag not in ("-p", "--param") or len(rest) < 2:
            raise QueryError(f"cannot read {flag!r}", hint="give parameters as -p NAME VALUE")
        name, value = rest.pop(0), rest.pop(0)
        params[name] = value
    return params


@app.command(cls=_QueryCommand, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def query(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="A query name from `forensics queries`.")],
    case_dir: Annotated[
        Path, typer.Option("--case", "-c", metavar="CASE_DIR", help="The case folder (holds case.duckdb).")
    ],
    fmt: Annotated[
        str, typer.Option("--format", "-f", metavar="FORMAT", help="table, csv, json or parquet.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--out", "-o", "--output", metavar="FILE", help="Write to this file instead of the screen."),
    ] = None,
) -> None:
    """Run one named query on a case, its parameters bound.

    Parameters are bound by DuckDB, never pasted into the SQL.
    Give each parameter as -p NAME VALUE (repeat for more); `forensics queries` lists them.

    \b
    Example: forensics query client_activity --case case-out -p client_ip 95.216.142.33
    """
    from forensics.explore import check_output, run_query, write_result

    try:
        params = _pairs(ctx.args)
        if output is not None:
            check_output(case_dir, output)
        frame = run_query(case_dir, name, params)
        text = write_result(frame, fmt, output)
    except Exception as exc:
        _fail(exc)
        return
    if text is not None:
        _show(out, text, end="")
    else:
        _show(err, f"{frame.height} rows written to {output}")


@app.command()
def sql(
    case_dir: Annotated[Path, typer.Argument(metavar="CASE_DIR", help="The case folder (holds case.duckdb).")],
    command: Annotated[
        str | None, typer.Option("--execute", "-e", "--command", metavar="SQL", help="Run this SQL and exit.")
    ] = None,
) -> None:
    """Open a read-only SQL prompt on the case database.

    TEMP tables are allowed. Statements end with ';' and may span lines, and each one's result is
    shown. .tables, .schema and .queries help; Ctrl-C stops a running query. The prompt reads the
    case database only: it cannot write or read files (COPY, EXPORT, read_csv), attach databases,
    install or load extensions, or change settings. History is kept in
    $XDG_STATE_HOME/forensics/sql_history (~/.local/state by default), never in the case folder.
    With -e, run the statements and exit.

    \b
    Example: forensics sql case-out -e "SELECT outcome, count(*) FROM downloaders GROUP BY ALL"
    """
    from forensics.explore import sql_once, sql_prompt

    def show(text: str) -> None:
        _show(out, text)

    try:
        if command is not None:
            sql_once(case_dir, command, write=show)
        else:
            sql_prompt(case_dir, write=show)
    except Exception as exc:
        _fail(exc)


@app.command()
def schema(
    case_dir: Annotated[Path, typer.Argument(metavar="CASE_DIR", help="The case folder (holds case.duckdb).")],
) -> None:
    """Document the case database's tables and columns.

    Tables with row counts, columns with type and meaning.
    The text comes from forensics/schema.py, the one module that owns the tables.

    \b
    Example: forensics schema case-out
    """
    from forensics.explore import describe_table, schema_doc

    try:
        tables = schema_doc(case_dir)
    except Exception as exc:
        _fail(exc)
        return
    for t in tables:
        _show(out, describe_table(t) + "\n")


def main() -> None:
    try:
        app()
    except ForensicsError as exc:  # raised outside a command's own handler
        _show(err, f"Error: {exc.render()}")
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
