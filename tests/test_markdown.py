"""Markdown built from raw names renders them literally: no raw HTML, no broken code span, no split table row."""

import pytest

from metadata_assets.markdown import bullets, cell, code, in_table, literal, text, warnings_markdown

HOSTILE = [
    "<svg onload=alert(1)>",
    "a`b",
    "ends`",
    "`starts",
    "``a```",
    "`",
    "x|y",
    "a\\|b",
    "line\n# heading",
    "cr\r\nlf",
    " padded ",
    "**bold** _em_ [link](javascript:alert(1))",
    "&lt;b&gt; &amp;",
    "<b>bold</b>",
    "back\\`slash\\",
]


def one_line(name: str) -> str:
    return name.replace("\r\n", " ").replace("\r", " ").replace("\n", " ")


def md():
    markdown_it = pytest.importorskip("markdown_it")
    return markdown_it.MarkdownIt("commonmark").enable("table")  # commonmark preset: raw HTML allowed


def flat(tokens):
    """Every token, inline children included, in document order."""
    for t in tokens:
        yield t
        yield from flat(t.children or [])


def no_html(tokens):
    types = {t.type for t in flat(tokens)}
    assert not types & {"html_inline", "html_block"}, types
    return tokens


def inline_children(tokens):
    """The children of each inline token (one per paragraph or table cell)."""
    return [t.children for t in tokens if t.type == "inline"]


def test_ordinary_names_are_plain_code_spans():
    assert code("orders") == "`orders`" and cell("orders") == "`orders`"
    assert text("orders_eu.items") == "orders_eu.items" and literal("varchar(20)") == "varchar(20)"
    assert in_table("`a` changed") == "`a` changed"


@pytest.mark.parametrize("name", HOSTILE)
def test_code_span_is_safe_structurally(name):
    span = code(name)
    assert "\n" not in span and "\r" not in span
    fence = len(span) - len(span.lstrip("`"))
    assert span.endswith("`" * fence) and "`" * fence not in span[fence:-fence]  # no run inside as long as the fence
    inner = span[fence:-fence]
    if inner.startswith(" ") and inner.endswith(" ") and inner.strip(" "):
        inner = inner[1:-1]  # the one space CommonMark strips on both sides
    assert inner == one_line(name)


@pytest.mark.parametrize("name", HOSTILE)
def test_code_span_parses_to_exactly_the_name(name):
    (children,) = inline_children(no_html(md().parse(f"see {code(name)} here")))
    spans = [t for t in children if t.type == "code_inline"]
    assert [t.content for t in spans] == [one_line(name)]
    assert "".join(t.content for t in children if t.type == "text") == "see  here"


@pytest.mark.parametrize("name", HOSTILE)
def test_table_cell_keeps_the_row_and_the_name(name):
    change = f"column {code(name)}.{code('c')} changed: {code(name)} → {code('after|x')}"
    src = "\n".join(["| table | change |", "|---|---|", f"| {cell(name)} | {in_table(change)} |"])
    tokens = no_html(md().parse(src))
    assert [t.type for t in tokens].count("td_open") == 2  # the `|` in the name did not split the row
    first, second = inline_children(tokens)[2:]
    assert [t.content for t in first if t.type == "code_inline"] == [one_line(name)]
    assert [t.content for t in second if t.type == "code_inline"] == [one_line(name), "c", one_line(name), "after|x"]


@pytest.mark.parametrize(
    "prose",
    HOSTILE
    + [
        "# not a heading",
        "1. not a list",
        "- nor this",
        "=== nor this",
        "> not a quote",
        "    not code",
        "_a_ *b* ~~c~~ order_items",
        "<!-- comment -->",
        "[x]: http://example.com",
        "trailing \\",
    ],
)
def test_text_renders_as_the_literal_prose(prose):
    tokens = no_html(md().parse(text(prose)))
    assert [t.type for t in tokens] == ["paragraph_open", "inline", "paragraph_close"]
    (children,) = inline_children(tokens)
    assert {t.type for t in children} == {"text"}, [t.type for t in children]  # no em, code, link, html
    # the paragraph shows the prose (markdown drops leading and trailing blanks of a paragraph anyway)
    assert "".join(t.content for t in children) == one_line(prose).strip(" ")


def test_text_leaves_ordinary_prose_alone_and_escapes_html_with_entities():
    assert text("db.t_1: 3 columns (2 without comment)") == "db.t_1: 3 columns (2 without comment)"
    assert text("<svg onload=alert(1)>") == "&lt;svg onload=alert(1)&gt;"
    assert text("a & b") == "a &amp; b"


def test_literal_is_plain_only_when_markdown_cannot_misread_it():
    assert literal("fk_orders") == "fk_orders" and literal("enum('a','b')") == "enum('a','b')"
    assert literal("ARRAY<STRUCT<qty INT64>>") == "`ARRAY<STRUCT<qty INT64>>`"
    assert literal("_tmp") == "`_tmp`"


def test_warnings_markdown_is_a_safe_bullet_list():
    assert warnings_markdown([]) == "none"
    warnings = [
        "db.<svg onload=alert(1)>: no privilege",
        "t`x: SHOW CREATE failed\n# not a heading",
        "`a|b`: 1. unreadable",
        "<b>bold</b> & *stars*",
    ]
    rendered = warnings_markdown(warnings)
    assert rendered.count("\n") == len(warnings) - 1 and all(line.startswith("- ") for line in rendered.split("\n"))
    tokens = no_html(md().parse(rendered))
    assert [t.type for t in tokens].count("list_item_open") == len(warnings)
    assert [t.type for t in tokens].count("bullet_list_open") == 1
    assert ["".join(c.content for c in children) for children in inline_children(tokens)] == [
        one_line(w) for w in warnings
    ]
    assert all({c.type for c in children} == {"text"} for children in inline_children(tokens))


def test_bullets_join_safe_markdown_as_it_is():
    items = [f"table {code('<svg>')} dropped", f"column {code('a`b')}.{code('c')} removed (was int)"]
    assert bullets(items) == "- table `<svg>` dropped\n- column ``a`b``.`c` removed (was int)"
    assert bullets([]) == "none" and bullets([], empty="") == ""
