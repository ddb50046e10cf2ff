"""Apache `LogFormat` and nginx `log_format` strings, compiled into something that reads lines.

A layout is a list of literals and directives. It compiles to (a) an anchored regular expression
that reads one line exactly, honouring the servers' escaping of quotes inside quoted fields, and
(b) where the layout allows it, a plan for a CSV reader (space-separated, double-quoted), which is
several times faster; lines that the fast plan cannot read exactly fall back to the regex.

Vendor formats written in the nginx dialect (AWS ALB and S3, Traefik) name a field's target and
kind inline where no nginx variable fits: `${client_addr:addr_lastport}` is read into
client_addr with the kind addr_lastport (see normalize.py for kinds).

Specs: https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats and
https://nginx.org/en/docs/http/ngx_http_log_module.html#log_format (variables:
https://nginx.org/en/docs/varindex.html).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from forensics.errors import FormatError

# What a directive holds, and how its text becomes a canonical value (see normalize.py).
#   target: a canonical column of requests, "_request" (the request line), "_ts" (the time), or
#           any other name, which is kept in `extra` under that name.
#   kind:   how to convert the text. str | addr | int | bytes_clf (- means 0) | bytes |
#           ts_clf | ts_iso | ts_epoch_s | us | ms | s | request_uri | content_range
#           | strftime:<pattern> | ts_epoch_ns | ts_rfc3339 | ts_auto | ts_auto_utc | addr_port | addr_lastport
#           | ns | duration | full_url | request_spaced | reject | list (a ", "-separated list,
#           kept as text) | rest (any text, spaces and quotes included, kept as text)


@dataclass(frozen=True)
class Directive:
    token: str
    target: str
    kind: str = "str"


_APACHE_SIMPLE: dict[str, tuple[str, str]] = {
    "h": ("client_addr", "addr"),
    "a": ("client_addr", "addr"),
    "l": ("ident", "str"),
    "u": ("remote_user", "str"),
    "t": ("_ts", "ts_clf"),
    "r": ("_request", "str"),
    "s": ("status", "int"),
    "b": ("body_bytes", "bytes_clf"),
    "B": ("body_bytes", "bytes"),
    "O": ("total_bytes", "bytes"),
    "I": ("bytes_received", "bytes"),
    "S": ("bytes_transferred", "bytes"),
    "v": ("host", "str"),
    "V": ("host", "str"),
    "p": ("server_port", "str"),
    "D": ("time_taken_ms", "us"),
    "T": ("time_taken_ms", "s"),
    "m": ("method", "str"),
    "U": ("path", "str"),
    "q": ("query", "query"),
    "H": ("protocol", "str"),
    "X": ("connection_status", "str"),
    "k": ("keepalive_requests", "str"),
    "L": ("log_id", "str"),
    "A": ("server_addr", "str"),
    "P": ("pid", "str"),
    "R": ("handler", "str"),
    "f": ("filename", "str"),
}

_HEADER_TARGETS: dict[str, str] = {
    "referer": "referer",
    "user-agent": "user_agent",
    "x-forwarded-for": "xff",
    "host": "host",
}

_NGINX: dict[str, tuple[str, str]] = {
    "remote_addr": ("client_addr", "addr"),
    "realip_remote_addr": ("peer_addr", "addr"),
    "binary_remote_addr": ("client_addr_binary", "str"),
    "remote_port": ("client_port", "int"),
    "remote_user": ("remote_user", "str"),
    "time_local": ("_ts", "ts_clf"),
    "time_iso8601": ("_ts", "ts_iso"),
    "msec": ("_ts", "ts_epoch_s"),
    "request": ("_request", "str"),
    "status": ("status", "int"),
    "body_bytes_sent": ("body_bytes", "bytes"),
    "bytes_sent": ("total_bytes", "bytes"),
    "request_length": ("bytes_received", "bytes"),
    "http_referer": ("referer", "str"),
    "http_user_agent": ("user_agent", "str"),
    "http_x_forwarded_for": ("xff", "str"),
    "proxy_add_x_forwarded_for": ("xff", "str"),
    "request_time": ("time_taken_ms", "s"),
    "host": ("host", "str"),
    "http_host": ("host", "str"),
    "server_name": ("server_name", "str"),
    "request_method": ("method", "str"),
    "request_uri": ("_request_uri", "request_uri"),
    "uri": ("path", "str"),
    "document_uri": ("path", "str"),
    "args": ("query", "query"),
    "query_string": ("query", "query"),
    "server_protocol": ("protocol", "str"),
    "scheme": ("scheme", "str"),
    "upstream_cache_status": ("cache_status_raw", "str"),
    "request_id": ("request_id", "str"),
    "sent_http_content_range": ("_content_range", "content_range"),
    "sent_http_content_type": ("content_type", "str"),
    "http_range": ("range_requested", "str"),
}


def _apache_directive(token: str, name: str, arg: str | None) -> Directive:
    if arg is not None:
        low = arg.lower()
        if name == "i":
            return Directive(token, _HEADER_TARGETS.get(low, f"req_{low}"), "str")
        if name == "o":
            if low == "content-range":
                return Directive(token, "_content_range", "content_range")
            if low == "content-type":
                return Directive(token, "content_type", "str")
            return Directive(token, f"resp_{low}", "str")
        if name == "t":
            if arg in ("sec",):
                return Directive(token, "_ts", "ts_epoch_s")
            if arg in ("msec",):
                return Directive(token, "_ts", "ts_epoch_ms")
            if arg in ("usec",):
                return Directive(token, "_ts", "ts_epoch_us")
            fmt = arg
            for prefix in ("begin:", "end:"):
                fmt = fmt.removeprefix(prefix)
            return Directive(token, "_ts", f"strftime:{fmt}")
        if name == "T":
            unit = {"ms": "ms", "us": "us", "s": "s"}.get(low, "s")
            return Directive(token, "time_taken_ms", unit)
        if name == "a" and low == "c":
            return Directive(token, "peer_addr", "addr")
        if name == "p" and low == "remote":
            # %{remote}p: the client's source port (mod_log_config), what a carrier needs behind CGNAT
            return Directive(token, "client_port", "int")
        if name in ("x", "e", "n", "C", "p", "P", "^ti", "^to"):
            return Directive(token, f"{name.lower()}_{low}", "str")
    if name in _APACHE_SIMPLE:
        target, kind = _APACHE_SIMPLE[name]
        return Directive(token, target, kind)
    raise FormatError(
        f"the Apache directive {token!r} is not supported",
        hint="see https://httpd.apache.org/docs/2.4/mod/mod_log_config.html#formats, "
        "or open an issue with a sample line",
    )


# Variables nginx writes as lists when a request tried several upstream servers: values for the
# servers of one group are separated by ", ", groups (after an internal redirect) by " : "
# (https://nginx.org/en/docs/http/ngx_http_upstream_module.html#var_upstream_addr).
_NGINX_LIST_VARIABLES = (
    "upstream_addr", "upstream_status", "upstream_response_time", "upstream_response_length",
    "upstream_connect_time", "upstream_header_time", "upstream_queue_time",
    "upstream_bytes_received", "upstream_bytes_sent", "upstream_http_", "upstream_cookie_",
    "upstream_trailer_",
)


def _nginx_directive(token: str, name: str) -> Directive:
    if name.startswith(_NGINX_LIST_VARIABLES):
        return Directive(token, name, "list")
    if name in _NGINX:
        target, kind = _NGINX[name]
        return Directive(token, target, kind)
    if name.startswith("http_"):
        header = name[5:].replace("_", "-")
        return Directive(token, _HEADER_TARGETS.get(header, f"req_{header}"), "str")
    if name.startswith("sent_http_"):
        return Directive(token, f"resp_{name[10:].replace('_', '-')}", "str")
    # Any other variable ($upstream_addr, $ssl_protocol, $connection ...) is kept by its name;
    # one that starts with "_" as nginx_<name>, since "_" names are the readers' own columns.
    return Directive(token, name if not name.startswith("_") else f"nginx{name}", "str")


# Targets starting with "_" that normalize.py reads (a time, a request line or URL to split, a
# Content-Range to parse); any other "_" name would clash with the readers' working columns.
_INTERMEDIATE_TARGETS = {"_ts", "_request", "_request_uri", "_url", "_content_range", "_date", "_time"}

_APACHE_TOKEN = re.compile(r"%[!\d,]*[<>]?(?:\{([^}]*)\})?(\^t[io]|[a-zA-Z%])")
_NGINX_TOKEN = re.compile(r"\$(?:\{(\w+)(?::(\w+))?\}|(\w+))")


@dataclass(frozen=True)
class Part:
    literal: str | None = None
    directive: Directive | None = None


@dataclass
class CompiledLayout:
    dialect: str
    text: str
    parts: list[Part]
    regex: str
    group_targets: list[Directive]
    csv_plan: list[tuple[Directive, str]] | None = field(default=None)
    lenient: bool = False
    # csv_plan: one entry per CSV column: (directive, role) with role "value" (bare), "quoted"
    # (between double quotes), "literal" (the
    # column must equal the directive's token) "ts_head" or "ts_tail" (the two halves of a
    # bracketed time that contains a space).

    @property
    def directives(self) -> list[Directive]:
        return [p.directive for p in self.parts if p.directive]


def parse_parts(text: str, dialect: str) -> list[Part]:
    parts: list[Part] = []
    pos = 0
    pattern = _APACHE_TOKEN if dialect == "apache" else _NGINX_TOKEN
    for m in pattern.finditer(text):
        if m.start() > pos:
            parts.append(Part(literal=text[pos : m.start()]))
        if dialect == "apache":
            arg, name = m.group(1), m.group(2)
            if name == "%":
                parts.append(Part(literal="%"))
            else:
                parts.append(Part(directive=_apache_directive(m.group(0), name, arg)))
        elif m.group(2):
            # ${target:kind}: a vendor field with its target and kind named in the layout.
            reserved = m.group(1) in ("ts", "line_no", "source_id", "extra")
            if reserved or (m.group(1).startswith("_") and m.group(1) not in _INTERMEDIATE_TARGETS):
                raise FormatError(
                    f"the layout names the target {m.group(1)!r}, which is not a field this tool can fill",
                    hint="ts, line_no, source_id and extra are filled by the readers, and of the "
                    "targets starting with '_' only these can be named: " + ", ".join(sorted(_INTERMEDIATE_TARGETS)),
                )
            parts.append(Part(directive=Directive(m.group(0), m.group(1), m.group(2))))
        else:
            name = m.group(1) or m.group(3)
            parts.append(Part(directive=_nginx_directive(m.group(0), name)))
        pos = m.end()
    if pos < len(text):
        parts.append(Part(literal=text[pos:]))
    # Apache writes \" inside quoted fields and nginx \x22: both unescape nothing here: values
    # are kept as logged.
    merged: list[Part] = []
    for p in parts:
        if p.literal is not None and merged and merged[-1].literal is not None:
            merged[-1] = Part(literal=merged[-1].literal + p.literal)
        else:
            merged.append(p)
    if not any(p.directive for p in merged):
        raise FormatError(
            f"the layout {text!r} has no {'%' if dialect == 'apache' else '$'} directives",
            hint="give the LogFormat / log_format string exactly as in the server's configuration",
        )
    return merged


_QUOTED_VALUE = r'((?:[^"\\]|\\.)*)'


def _directive_regex(d: Directive, quoted: bool, bracketed: bool, lenient: bool = False) -> str:
    if quoted:
        # Lenient: servers that did not escape quotes (old Apache, hand-made logs); the rest of
        # the layout decides where the value ends.
        return "(.*?)" if lenient else _QUOTED_VALUE
    if d.kind == "ts_clf" and not bracketed:
        # Apache %t prints its own brackets.
        return r"\[([^\]]+)\]"
    if bracketed:
        return r"([^\]]*)"
    if d.kind == "addr" or d.target == "xff":
        # Some setups log an X-Forwarded-For list here, bare or quoted.
        return r'("[^"]*"|[^\s,"]+(?:,\s*[^\s,"]+)*)'
    if d.kind.startswith("strftime:"):
        return r"(.+?)"
    if d.kind == "list":
        return r"([^\s,]+(?:(?:, | : )[^\s,]+)*)"
    if d.kind == "rest":
        # Whatever is left of the line up to the next part of the layout (a vendor's free text
        # after the request part, e.g. a router name with an unbalanced quote).
        return r"(.*)"
    return r"(\S+)"


def compile_layout(text: str, dialect: str, trailing: bool = False, lenient: bool = False) -> CompiledLayout:
    if dialect not in ("apache", "nginx"):
        raise FormatError(f"unknown layout dialect {dialect!r}", hint="use apache or nginx")
    parts = parse_parts(text, dialect)
    out: list[str] = ["^"]
    targets: list[Directive] = []
    for i, p in enumerate(parts):
        if p.literal is not None:
            out.append(re.escape(p.literal).replace("\\ ", " "))
            continue
        assert p.directive is not None
        before = parts[i - 1].literal if i > 0 else None
        after = parts[i + 1].literal if i + 1 < len(parts) else None
        quoted = bool(before and before.endswith('"') and after and after.startswith('"'))
        bracketed = bool(before and before.endswith("[") and after and after.startswith("]"))
        out.append(_directive_regex(p.directive, quoted, bracketed, lenient))
        targets.append(p.directive)
    if trailing:
        out.append(r"(?: (.*?))?")
        targets.append(Directive("<trailing>", "trailing", "str"))
    out.append(r"[ \t]*\r?$")
    return CompiledLayout(
        dialect=dialect,
        text=text,
        parts=parts,
        regex="".join(out),
        group_targets=targets,
        csv_plan=None if lenient else _csv_plan(parts),
        lenient=lenient,
    )


def _csv_plan(parts: list[Part]) -> list[tuple[Directive, str]] | None:
    """A column plan for a space-separated, double-quoted CSV reading, or None if the layout's
    words are not all one directive, one quoted directive or one bracketed time."""
    words: list[list[Part]] = [[]]
    for p in parts:
        if p.literal is None:
            words[-1].append(p)
            continue
        chunks = p.literal.split(" ")
        for j, chunk in enumerate(chunks):
            if j > 0:
                words.append([])
            if chunk:
                words[-1].append(Part(literal=chunk))
    if words and not words[0]:
        return None
    if words and not words[-1]:
        words.pop()
    plan: list[tuple[Directive, str]] = []
    for w in words:
        lits = "".join(p.literal or "" for p in w)
        ds = [p.directive for p in w if p.directive]
        if not ds and '"' not in lits:
            plan.append((Directive(lits, "_literal", "literal"), "literal"))
            continue
        if len(ds) != 1:
            return None
        d = ds[0]
        time_word = d.kind == "ts_clf" and (lits == "[]" or lits == "")
        if time_word:
            plan.append((d, "ts_head"))
            plan.append((d, "ts_tail"))
        elif lits in ("", '""'):
            plan.append((d, "quoted" if lits else "value"))
        else:
            return None
    return plan
