"""Markdown built from raw names, safe whatever the names hold.

Dagit renders `MetadataValue.md` as markdown, and the names come from the databases: a table may be called
`<svg onload=alert(1)>`, hold a backtick or a newline, or a `|` that splits a table row. No Dagster here.

- `code(name)`: an inline code span showing the name literally (CommonMark: nothing is parsed inside a code span,
  neither markdown, nor HTML, nor entities);
- `cell(name)`: the same, for a cell of a GFM table;
- `in_table(md)`: an already safe markdown fragment, fitted into one table cell;
- `text(s)`: raw prose, escaped so it renders as the literal text, HTML included;
- `literal(s)`: `s` unchanged when markdown would render it as it is, else `code(s)`;
- `bullets(items)`: a list of already safe markdown fragments; `warnings_markdown(warnings)`: of raw strings.
"""

from __future__ import annotations

import re
from typing import Iterable

_LINE_ENDINGS = re.compile(r"\r\n|\r|\n")
_BACKTICKS = re.compile(r"`+")


def _one_line(s: str) -> str:
    return _LINE_ENDINGS.sub(" ", s)


def code(text: str) -> str:
    """`text` as an inline code span: the fence is one backtick longer than the longest run inside, and the content
    is padded with a space when it starts or ends with a backtick (or starts and ends with a space, which CommonMark
    would strip). Line endings become spaces (CommonMark does the same inside a code span, but a raw newline would
    end a table row or a list item first). An empty text renders as a one-space code span."""
    text = _one_line(str(text))
    if not text:
        return "` `"
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    if text[0] == "`" or text[-1] == "`" or (text[0] == " " and text[-1] == " " and text.strip(" ")):
        text = f" {text} "
    return f"{fence}{text}{fence}"


def in_table(md: str) -> str:
    """An already safe markdown fragment (code spans, escaped text) as the content of one GFM table cell: every `|`
    escaped (GFM splits cells on `|` before parsing inlines, even inside code spans, and drops the backslash of `\\|`
    again there), line endings as spaces."""
    return _one_line(md).replace("|", "\\|")


def cell(text: str) -> str:
    """A raw name as a code span in a GFM table cell."""
    return in_table(code(text))


# always escaped: backslash escapes for markdown, entities for what raw HTML (and autolinks) need
_ESCAPES = str.maketrans(
    {
        "\\": "\\\\",
        "`": "\\`",
        "*": "\\*",
        "[": "\\[",
        "]": "\\]",
        "|": "\\|",
        "~": "\\~",
        "<": "&lt;",
        ">": "&gt;",
        "&": "&amp;",
    }
)
_UNDERSCORES = re.compile(r"_+")
_LINE_START = re.compile(r"^(\d{1,9})([.)])|^([#+\-=])")


def text(s: str) -> str:
    """Raw prose as markdown that renders as exactly this text: no emphasis, code, links, tables or raw HTML
    (`<`, `>`, `&` become entities), no block syntax at the start (`#`, `-`, `+`, `=`, `1.`). Line endings become
    spaces and leading whitespace is dropped (markdown would drop it too, or make it a code block), so the result
    fits in a list item or a table cell. `_` is left alone between letters or digits (`order_items`), where it
    cannot start emphasis."""
    s = _one_line(str(s)).lstrip(" \t")

    def underscores(m: re.Match) -> str:
        a, b = m.start(), m.end()
        if 0 < a and b < len(s) and s[a - 1].isalnum() and s[b].isalnum():
            return m.group()
        return "\\_" * len(m.group())

    out = "".join(
        part.translate(_ESCAPES) if i % 2 == 0 else part
        for i, part in enumerate(_split_keep(_UNDERSCORES, s, underscores))
    )
    return _LINE_START.sub(lambda m: f"{m.group(1)}\\{m.group(2)}" if m.group(1) else f"\\{m.group(3)}", out)


def literal(s: str) -> str:
    """`s` as it is when markdown would render it unchanged (`varchar(20)`, `fk_orders`), else as a code span
    (`ARRAY<STRUCT<qty INT64>>`, `<svg>`): for values in running text that are usually plain."""
    s = str(s)
    return s if s and text(s) == s else code(s)


def _split_keep(rx: re.Pattern, s: str, render) -> list[str]:
    """`s` split into [plain, rendered match, plain, rendered match, ..., plain]."""
    parts, pos = [], 0
    for m in rx.finditer(s):
        parts += [s[pos : m.start()], render(m)]
        pos = m.end()
    parts.append(s[pos:])
    return parts


def bullets(items: Iterable[str], empty: str = "none") -> str:
    """Already safe markdown fragments (from `code`, `text`, `diff.SchemaDiff.breaking`) as a bullet list, one line
    each; `empty` when there are none."""
    lines = [f"- {_one_line(item)}" for item in items]
    return "\n".join(lines) if lines else empty


def warnings_markdown(warnings: Iterable[str]) -> str:
    """Raw warning strings as a markdown bullet list, each escaped by `text()`; "none" for no warning."""
    return bullets(text(w) for w in warnings)
