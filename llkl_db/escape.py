"""Untrusted text into output, escaped for the context it lands in: one function per context.

Entry ids, model ids, revisions, variants, contributor names, score names and folder names come
from contributors (pull requests on the dataset) and stay hostile until validated; even then a
query may read a folder that was never validated. Every place that formats such a value into
output goes through exactly one of these:

=============================  ===============================================================
context                        function
=============================  ===============================================================
rich markup (tables, titles)   :func:`for_terminal`
plain terminal line (echo)     :func:`for_plain_terminal`
Markdown, inline text          :func:`for_markdown`
Markdown table cell            :func:`for_markdown_table_cell`
Markdown code span             :func:`for_markdown_code_span` (``table=True`` inside a table)
inside a fenced code block     :func:`for_markdown_code_block`
YAML scalar (front matter)     :func:`for_yaml_scalar`
HTML text / attribute value    :func:`for_html` / :func:`for_html_attribute`
JSON inside ``<script>``       :func:`for_json_in_html_script`
matplotlib text (PNG labels)   :func:`for_matplotlib`
=============================  ===============================================================

Escape at the last moment, once, where the value meets its context; keep the raw value in data
(JSON output, Parquet, Problem objects) so that it can be compared and copied.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

# Characters a terminal acts on instead of showing: C0 (including ESC, BEL, BS, CR, LF, TAB),
# DEL and C1 (U+0080..U+009F: CSI U+009B, OSC U+009D, ...). Also the Unicode bidirectional
# overrides and isolates (display spoofing, "Trojan source") and the line/paragraph separators.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0x7F else f"\\u{code:04x}"


def visible_controls(text: Any) -> str:
    """``text`` with every control character written out (ESC -> ``\\x1b``, CSI -> ``\\u009b``,
    newline -> ``\\x0a``); other unicode is kept as is. Never emits a raw control character."""
    return _CONTROL.sub(_visible, str(text))


def for_plain_terminal(text: Any) -> str:
    """For a plain line on a terminal (``typer.echo``): control characters made visible. Rich
    markup is not interpreted there, so brackets stay as they are (an id copies back exactly)."""
    return visible_controls(text)


def for_terminal(text: Any) -> str:
    """For rich output (table cells, titles, captions, ``console.print``): rich markup escaped
    (``[bold]`` shows literally, ``evil[/b]`` does not raise) and control characters visible."""
    from rich.markup import escape

    return escape(visible_controls(text))


# CommonMark: any ASCII punctuation may be backslash-escaped; these are the ones that start
# emphasis, links, images, code, headings, lists, tables, strikethrough or templates. HTML's
# ``& < >`` become entities instead, so no renderer or sanitizer sees a tag.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()#+\-!|{}~])")
_LINE_BREAKS = re.compile(r"\r\n|[\r\n\u2028\u2029\x0b\x0c\x85]")


def for_markdown(text: Any) -> str:
    """For inline Markdown text: special characters backslash-escaped, ``& < >`` as ``&amp; &lt;
    &gt;`` (no tag, no entity decoded), line breaks as spaces (no new block, heading or list can
    start) and other control characters visible."""
    one_line = _LINE_BREAKS.sub(" ", str(text))
    entities = one_line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", entities)
    return visible_controls(escaped)


def for_markdown_table_cell(text: Any) -> str:
    """For one cell of a GitHub-flavoured Markdown table: as :func:`for_markdown`, which also
    writes ``|`` as ``\\|`` so the cell cannot split."""
    return for_markdown(text)


def for_markdown_code_span(text: Any, table: bool = False) -> str:
    """``text`` as a Markdown code span, delimited by a backtick fence longer than any backtick run
    inside (padded with spaces when it starts or ends with a backtick); line breaks as spaces.
    With ``table=True`` the span sits in a table cell: ``|`` becomes ``\\|`` (GFM unescapes it);
    a backslash next to a pipe cannot be written in a code span there, so such text falls back to
    :func:`for_markdown_table_cell`."""
    body = visible_controls(_LINE_BREAKS.sub(" ", str(text)))
    if table:
        if "\\" in body and "|" in body:
            return for_markdown_table_cell(text)
        body = body.replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    if body.startswith("`") or body.endswith("`") or (body.startswith(" ") and body.endswith(" ") and body.strip()):
        body = f" {body} "
    return f"{fence}{body}{fence}"


def for_markdown_code_block(text: Any) -> str:
    """For a value inside a fenced code block (shown verbatim): line breaks and other control
    characters visible, so no line of the value can close the fence."""
    return visible_controls(text)


# YAML reads a double-quoted scalar with JSON's escapes, but treats some characters JSON leaves
# raw as line breaks (U+0085, U+2028, U+2029) or refuses them (DEL, C1, BOM, U+FFFE/U+FFFF).
_YAML_RAW_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")


def for_yaml_scalar(text: Any) -> str:
    """``text`` as one double-quoted YAML scalar (JSON string syntax, which YAML 1.2 and PyYAML
    read): newlines, ``:``, ``#``, ``-`` or quotes cannot change the structure around it, and
    ``yaml.safe_load`` gives back exactly ``str(text)``."""
    quoted = json.dumps(str(text), ensure_ascii=False)
    return _YAML_RAW_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


def for_html(text: Any) -> str:
    """For HTML text content: ``& < > " '`` as entities."""
    return html.escape(str(text), quote=True)


def for_html_attribute(text: Any) -> str:
    """For a quoted HTML attribute value (always write the quotes): ``& < > " '`` as entities."""
    return html.escape(str(text), quote=True)


def for_json_in_html_script(obj: Any) -> str:
    """``obj`` as JSON to embed in an inline ``<script>``: ``<``, ``>``, ``&`` and U+2028/U+2029
    as ``\\u`` escapes, so neither ``</script>`` nor ``<!--`` can end or change the script."""
    text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    for raw, escaped in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(raw, escaped)
    return text


def for_matplotlib(text: Any) -> str:
    """For a matplotlib title, label or legend entry: ``$`` escaped so no mathtext is parsed (a
    label like ``$\\frac$`` would fail at draw time); control characters visible."""
    return visible_controls(text).replace("$", r"\$")
