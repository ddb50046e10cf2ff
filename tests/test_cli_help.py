"""The command line's help as a reader meets it: every command has help that ends with an example,
options mean the same thing in every command, and the help text is plain, readable prose.

Modelled on sqlite-utils' tests/test_docs.py: the test walks the real command tree, so a new
command without help, without an example or with a clashing option fails here.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from forensics import __version__
from forensics.cli import app

REPO = Path(__file__).resolve().parent.parent
runner = CliRunner()
WIDTH = 80


def _walk(command, path=()):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in sorted(subcommands.items()):
            yield from _walk(sub, (*path, name))
    else:
        yield path, command


ROOT = typer.main.get_command(app)
COMMANDS = dict(_walk(ROOT))
IDS = [" ".join(p) for p in COMMANDS]


def _help(path: tuple[str, ...]) -> str:
    res = runner.invoke(app, [*path, "--help"], env={"COLUMNS": str(WIDTH)})
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_every_command_has_help_with_an_example(path):
    text = _help(path)
    examples = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("Example:")]
    assert examples, f"`forensics {' '.join(path)} --help` has no example"
    # The example is one whole command line, not rewrapped, and runs the command it documents.
    for ex in examples:
        assert ex.startswith(f"Example: forensics {' '.join(path)}"), ex
        assert ex.count('"') % 2 == 0, ex


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_help_is_plain_text(path):
    text = _help(path)
    # No Python types ("<bool>", "<list[Path]>", "<path>") and no typer braces around arguments.
    assert not re.search(r"<(bool|int|str|float|path|file|list\[.*?\]|tuple\[.*?\]|datetime)>", text, re.I), text
    assert "{" not in text.splitlines()[0], text
    # Flags take no value.
    command = COMMANDS[path]
    for param in command.params:
        if getattr(param, "is_flag", False):
            for opt in param.opts:
                assert not re.search(rf"(^|[ ,]){re.escape(opt)} [A-Z<]", text, re.M), f"{opt} shown with a value"
    # Every line fits the terminal except an example, which is kept whole to be copied.
    long = [ln for ln in text.splitlines() if len(ln) > WIDTH and "Example:" not in ln]
    assert not long, long


@pytest.mark.parametrize("path", list(COMMANDS), ids=IDS)
def test_description_is_not_hard_wrapped(path):
    """A paragraph fills its lines: a short line in the middle of one is a line break left in a
    docstring (click rewraps paragraphs, so a break shows only if the text asks for it)."""
    text = _help(path)
    description = text.split("\n\n", 1)[1].split("Arguments:")[0].split("Options:")[0]
    for paragraph in description.split("\n\n"):
        lines = [ln for ln in paragraph.splitlines() if ln.strip()]
        if any("Example:" in ln for ln in lines):
            continue
        for line, following in itertools.pairwise(lines):
            room = WIDTH - 2 - len(line)
            first_word = following.split()[0]
            assert room < len(first_word) + 1, f"line broken early in `{' '.join(path)} --help`:\n{line}\n{following}"


def test_brackets_in_help_print_as_they_are():
    assert "[enrich] databases" in _help(("run",))
    assert "[enrich] lists" in _help(("lists", "update"))
    assert "[[sources]]" in _help(("formats",))


def _options():
    """(command, short, long names) for every option of every command."""
    for path, command in COMMANDS.items():
        for param in command.params:
            if param.param_type_name != "option" or param.name == "help":
                continue
            shorts = [o for o in param.opts + param.secondary_opts if not o.startswith("--")]
            longs = [o for o in param.opts + param.secondary_opts if o.startswith("--")]
            yield " ".join(path), shorts, longs
        for text, _ in getattr(command, "extra_options", ()):
            flags = [f.strip() for f in text.split(" ")[0:2]]
            yield " ".join(path), [f.rstrip(",") for f in flags if not f.startswith("--")], [
                f.rstrip(",") for f in flags if f.startswith("--")
            ]


def test_a_short_option_means_one_thing_in_every_command():
    meaning: dict[str, tuple[str, str]] = {}
    for command, shorts, longs in _options():
        for short in shorts:
            first = meaning.setdefault(short, (longs[0], command))
            assert first[0] == longs[0], f"{short} is {first[0]} in `{first[1]}` but {longs[0]} in `{command}`"


def test_a_long_option_has_the_same_short_form_everywhere():
    short_of: dict[str, tuple[tuple[str, ...], str]] = {}
    for command, shorts, longs in _options():
        for long in longs:
            first = short_of.setdefault(long, (tuple(shorts), command))
            assert first[0] == tuple(shorts), f"{long} is {first[0]} in `{first[1]}` but {tuple(shorts)} in `{command}`"


def test_query_documents_its_parameters():
    text = _help(("query",))
    options = text.split("Options:")[1]
    assert "-p, --param NAME VALUE" in options


def test_version_option():
    res = runner.invoke(app, ["--version"])
    assert res.exit_code == 0 and res.output.strip() == f"forensics {__version__}"


def test_every_command_is_in_the_readme():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    missing = [p for p in COMMANDS if f"forensics {' '.join(p)}" not in readme]
    assert not missing, missing
