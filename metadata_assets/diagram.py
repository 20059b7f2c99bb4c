"""A picture of one database: its tables and views, their foreign keys and view lineage, and what changed.

An SVG drawn from the catalog snapshot and its diff (no Dagster, no SQL, no layout library): base tables in the
left column, views in the right; an arrow for each foreign key (table -> the table it references) and for each table
a view reads (view -> table; from the fully qualified names of `SHOW CREATE` / `pg_get_viewdef` text, as written).
Added objects are green, changed ones amber, dropped ones red and dashed. Dagit shows it as a markdown image.
"""

from __future__ import annotations

import base64
import re
from html import escape
from typing import Optional

from metadata_assets.catalog import Database
from metadata_assets.diff import SchemaDiff

MAX_DRAWN = 40  # more tables than this make an unreadable picture: DataHub's lineage view is the place then
_W, _H, _GAP, _X0, _X1, _Y0 = 220, 26, 10, 20, 380, 40
_COLORS = {"added": "#d9f2d9", "changed": "#fff0c2", "removed": "#f8d0d0", "same": "#eef1f7"}
_QUALIFIED = re.compile(r'[`"]((?:[^`"]|``|"")+)[`"]\.[`"]((?:[^`"]|``|"")+)[`"]')


def _view_reads(db: Database, view) -> set[str]:
    """Names of this database's tables the view's SQL names (qualified as the server prints them)."""
    names = set()
    for a, b in _QUALIFIED.findall(view.view_definition or ""):
        a, b = a.replace("``", "`").replace('""', '"'), b.replace("``", "`").replace('""', '"')
        names.add(b if a == db.name else f"{a}.{b}")  # PostgreSQL: "schema"."table" is the table's name
    return names


def database_svg(db: Database, d: Optional[SchemaDiff] = None) -> Optional[str]:
    """The picture as SVG text, or None when the database has no table or more than MAX_DRAWN."""
    tables = [t for t in db.tables if not t.is_view]
    views = [t for t in db.tables if t.is_view]
    removed_tables = list(d.tables_removed) if d is not None and not d.baseline else []
    removed_views = list(d.views_removed) if d is not None and not d.baseline else []
    if not db.tables and not removed_tables and not removed_views:
        return None
    if len(db.tables) + len(removed_tables) + len(removed_views) > MAX_DRAWN:
        return None
    state: dict[str, str] = {}
    if d is not None and not d.baseline:
        for n in d.tables_added + d.views_added:
            state[n] = "added"
        for c in d.tables:
            state.setdefault(c.table, "changed")
        for c in d.columns:
            state.setdefault(c.table, "changed")
        for n in removed_tables + removed_views:
            state[n] = "removed"
    left = [t.name for t in tables] + removed_tables
    right = [v.name for v in views] + removed_views
    pos = {n: (_X0, _Y0 + i * (_H + _GAP)) for i, n in enumerate(left)}
    pos.update({n: (_X1, _Y0 + i * (_H + _GAP)) for i, n in enumerate(right)})
    height = _Y0 + max(len(left), len(right), 1) * (_H + _GAP) + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_X1 + _W + 20}" height="{height}" '
        'font-family="sans-serif" font-size="12">',
        '<defs><marker id="a" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" '
        'orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#667"/></marker></defs>',
        f'<text x="{_X0}" y="22" font-weight="bold">{escape(db.name)}: tables</text>',
        f'<text x="{_X1}" y="22" font-weight="bold">views</text>',
    ]

    def arrow(src: str, dst: str, dashed: bool = False) -> None:
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        if x1 == x2:  # table to table: a loop on the left side
            sx, sy, ex, ey = x1, y1 + _H / 2, x2, y2 + _H / 2
            path = f"M{sx},{sy} C{sx - 18},{sy} {ex - 18},{ey} {ex},{ey}"
        else:  # view (right) to table (left)
            sx, sy, ex, ey = x1, y1 + _H / 2, x2 + _W, y2 + _H / 2
            path = f"M{sx},{sy} C{sx - 60},{sy} {ex + 60},{ey} {ex},{ey}"
        dash = ' stroke-dasharray="4 3"' if dashed else ""
        out.append(f'<path d="{path}" fill="none" stroke="#667" stroke-width="1"{dash} marker-end="url(#a)"/>')

    for t in tables:
        for fk in t.foreign_keys:
            if fk.ref_database == db.name and fk.ref_table in pos and fk.ref_table != t.name:
                arrow(t.name, fk.ref_table)
    for v in views:
        for name in sorted(_view_reads(db, v)):
            if name in pos and name != v.name:
                arrow(v.name, name, dashed=True)
    for name, (x, y) in pos.items():
        s = state.get(name, "same")
        dash = ' stroke-dasharray="5 3"' if s == "removed" else ""
        label = name if len(name) <= 30 else name[:29] + "…"
        out.append(
            f'<rect x="{x}" y="{y}" width="{_W}" height="{_H}" rx="4" fill="{_COLORS[s]}" '
            f'stroke="#556"{dash}/><text x="{x + 8}" y="{y + 17}">{escape(label)}'
            f"{'' if s == 'same' else f' ({s})'}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def markdown_image(svg: str, alt: str) -> str:
    """The SVG as a markdown image Dagit renders inline (a data URI: it allows `data:` image sources)."""
    return f"![{escape(alt)}](data:image/svg+xml;base64,{base64.b64encode(svg.encode()).decode()})"
