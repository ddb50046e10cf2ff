from __future__ import annotations

import re

import pytest

from forensics.errors import FormatError
from forensics.layouts import compile_layout


def test_apache_combined_compiles_to_regex_and_csv_plan():
    c = compile_layout('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"', "apache")
    assert [d.target for d in c.group_targets] == [
        "client_addr", "ident", "remote_user", "_ts", "_request", "status", "body_bytes", "referer", "user_agent",
    ]
    assert c.csv_plan is not None and len(c.csv_plan) == 10  # the time takes two CSV columns
    m = re.match(c.regex, '1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5 "-" "a \\"b\\" c"')
    assert m and m.group(9) == 'a \\"b\\" c'


def test_nginx_layout_with_literal_dash():
    c = compile_layout('$remote_addr - $remote_user [$time_local] "$request" $status', "nginx")
    assert c.csv_plan is not None
    assert [role for _, role in c.csv_plan].count("literal") == 1


def test_layout_with_compound_word_has_no_fast_plan():
    c = compile_layout('%v:%p %h %l %u %t "%r" %>s %O', "apache")
    assert c.csv_plan is None
    assert re.match(c.regex, 'www.x.org:443 1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 5')


def test_unknown_apache_directive_is_a_clear_error():
    with pytest.raises(FormatError, match="not supported"):
        compile_layout("%h %Z", "apache")


def test_layout_without_directives():
    with pytest.raises(FormatError, match="no"):
        compile_layout("just text", "nginx")


def test_layout_targets_cannot_clash_with_the_readers_columns():
    layout = compile_layout('$remote_addr $_line [$time_local] "$request" $status', "nginx")
    assert [d.target for d in layout.group_targets][1] == "nginx_line"
    for text in ("${_line:str} $remote_addr", "${ts:str} $remote_addr", "${line_no:int} $remote_addr"):
        with pytest.raises(FormatError, match="not a field this tool can fill"):
            compile_layout(text, "nginx")
