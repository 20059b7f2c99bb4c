"""Deterministic schema generator for the benchmark: N databases x T tables x C columns (+~10% views).

Each database gets T base tables (InnoDB, primary keys, foreign keys to earlier tables, comments of which some are
non-ASCII) and T // 10 views (at least one). The same size always produces the same schema. DDL is sent as one
multi-statement batch per database over a single connection: CREATE TABLE is the cost, not the round trips.

A generated server is cached: its base dir holds `generated.json` (generator version and size); a later run with the
same version and size reuses the data dir, anything else wipes and regenerates it.
"""

from __future__ import annotations

import json
import random
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pymysql
from pymysql.constants import CLIENT

# Bump whenever the generated schema changes: cached data dirs of another version are regenerated.
GENERATOR_VERSION = "3"
DB_PREFIX = "bench_"
MARKER = "generated.json"


@dataclass(frozen=True)
class Size:
    name: str
    databases: int
    tables: int
    columns: int

    @property
    def views(self) -> int:
        return max(1, self.tables // 10)

    def database_names(self) -> list[str]:
        width = max(4, len(str(self.databases)))
        return [f"{DB_PREFIX}{i:0{width}d}" for i in range(self.databases)]


SIZES = {
    "S": Size("S", 20, 25, 12),
    "L": Size("L", 100, 30, 15),
    "XL": Size("XL", 3000, 10, 10),
    "W": Size("W", 1, 10000, 10),  # one wide database (issue 11, target 5)
}

# (column type, data type family) pairs; varied on purpose: numbers, strings, temporal, json, enum, blobs.
TYPES = [
    "int",
    "bigint unsigned",
    "smallint",
    "tinyint(1)",
    "decimal(12,2)",
    "double",
    "float",
    "varchar(64)",
    "varchar(255)",
    "char(2)",
    "text",
    "mediumtext",
    "date",
    "datetime",
    "timestamp NULL",
    "time",
    "year",
    "json",
    "enum('new','paid','shipped')",
    "set('a','b','c')",
    "varbinary(32)",
    "blob",
    "bit(8)",
]
COMMENTS = [
    "customer identifier",
    "amount in cents",
    "ISO country code",
    "when the row was last changed",
    "고객 이름 (customer name)",
    "prix en € TTC",
    "名前とメール",
    "größe in mm",
    "status of the order",
    "free text, may hold PII",
    "",
]
TABLE_WORDS = [
    "orders",
    "customers",
    "invoices",
    "events",
    "sessions",
    "products",
    "payments",
    "shipments",
    "accounts",
    "audit_log",
    "refunds",
    "stock",
    "prices",
    "users",
    "tickets",
]


def _q(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "''") + "'"


def database_ddl(size: Size, index: int) -> list[str]:
    """The statements that create database number `index` of `size`; deterministic."""
    rng = random.Random(f"{GENERATOR_VERSION}:{size.name}:{index}")
    db = size.database_names()[index]
    out = [
        f"CREATE DATABASE `{db}` CHARACTER SET utf8mb4 COMMENT {_q(f'benchmark database {index} ({size.name})')}",
        f"USE `{db}`",
    ]
    tables = [f"t{j:03d}_{TABLE_WORDS[(index + j) % len(TABLE_WORDS)]}" for j in range(size.tables)]
    cols_of: dict[str, list[str]] = {}
    for j, tname in enumerate(tables):
        cols = ["`id` bigint unsigned NOT NULL AUTO_INCREMENT COMMENT 'surrogate key'"]
        names = ["id"]
        fk = None
        if j > 0 and rng.random() < 0.6:  # a foreign key to an earlier table
            parent = tables[rng.randrange(j)]
            cols.append(f"`{parent[:40]}_id` bigint unsigned NULL COMMENT {_q('references ' + parent)}")
            names.append(f"{parent[:40]}_id")
            fk = (f"fk_{j:03d}_{parent[:4]}", names[-1], parent)
        k = len(cols)
        while len(cols) < size.columns:
            ctype = TYPES[rng.randrange(len(TYPES))]
            cname = f"c{k:02d}_{ctype.split('(')[0].split()[0]}"
            comment = COMMENTS[rng.randrange(len(COMMENTS))] if rng.random() < 0.7 else ""
            null = "NULL" if rng.random() < 0.5 or "NULL" in ctype else "NOT NULL"
            null = "" if "NULL" in ctype else null
            cols.append(f"`{cname}` {ctype} {null} COMMENT {_q(comment)}")
            names.append(cname)
            k += 1
        cols_of[tname] = names
        body = ",\n  ".join(
            cols
            + ["PRIMARY KEY (`id`)"]
            + (
                [f"CONSTRAINT `{fk[0]}` FOREIGN KEY (`{fk[1]}`) REFERENCES `{fk[2]}` (`id`) ON DELETE SET NULL"]
                if fk
                else []
            )
        )
        tcomment = COMMENTS[rng.randrange(len(COMMENTS))] if rng.random() < 0.8 else ""
        out.append(f"CREATE TABLE `{tname}` (\n  {body}\n) ENGINE=InnoDB COMMENT {_q(tcomment)}")
    for v in range(size.views):
        a = tables[rng.randrange(len(tables))]
        b = tables[rng.randrange(len(tables))]
        ca = cols_of[a][1:4]
        if a == b or rng.random() < 0.5:
            sel = ", ".join(f"`{c}`" for c in ["id", *ca])
            out.append(f"CREATE VIEW `v{v:02d}_{a}` AS SELECT {sel} FROM `{a}`")
        else:
            sel = ", ".join(["a.`id` AS a_id", "b.`id` AS b_id", *(f"a.`{c}`" for c in ca)])
            out.append(f"CREATE VIEW `v{v:02d}_{a}` AS SELECT {sel} FROM `{a}` a JOIN `{b}` b ON b.`id` = a.`id`")
    return out


def marker_path(basedir: Path) -> Path:
    return Path(basedir) / MARKER


def is_generated(basedir: Path, size: Size) -> bool:
    try:
        m = json.loads(marker_path(basedir).read_text())
    except (OSError, ValueError):
        return False
    return m.get("version") == GENERATOR_VERSION and m.get("size") == asdict(size)


def reset(basedir: Path) -> None:
    """Forget a stale or half-made server (call before starting it)."""
    marker_path(basedir).unlink(missing_ok=True)
    shutil.rmtree(Path(basedir) / "data", ignore_errors=True)


def generate(server, size: Size, basedir: Path, log=print) -> float:
    """Create every database of `size` on a fresh server and write the marker; returns seconds taken."""
    t0 = time.monotonic()
    conn = pymysql.connect(
        host=server.host,
        port=server.port,
        user="root",
        charset="utf8mb4",
        autocommit=True,
        client_flag=CLIENT.MULTI_STATEMENTS,
    )
    try:
        with conn.cursor() as cur:
            cur.execute("SET SESSION foreign_key_checks = 0")
            for i in range(size.databases):
                cur.execute(";\n".join(database_ddl(size, i)))
                while cur.nextset():
                    pass
                if size.databases >= 200 and (i + 1) % 250 == 0:
                    el = time.monotonic() - t0
                    log(
                        f"  generated {i + 1}/{size.databases} databases in {el:.0f}s "
                        f"(~{el / (i + 1) * (size.databases - i - 1):.0f}s to go)"
                    )
    finally:
        conn.close()
    took = time.monotonic() - t0
    marker_path(basedir).write_text(
        json.dumps(
            {
                "version": GENERATOR_VERSION,
                "size": asdict(size),
                "seconds": round(took, 1),
                "tables": size.databases * size.tables,
                "views": size.databases * size.views,
            },
            indent=2,
        )
    )
    return took


if __name__ == "__main__":  # print the DDL of one database, for a look
    import sys

    s = SIZES[sys.argv[1] if len(sys.argv) > 1 else "S"]
    print(";\n".join(database_ddl(s, int(sys.argv[2]) if len(sys.argv) > 2 else 0)) + ";")
