"""A MySQL 8 server's answers, as rows written from the MySQL 8.0 manual: the stand-in for a server that cannot be
installed here. Hand-written, not recorded from a server.

Debian ships MariaDB only and no registry reachable here ships mysqld, so the MySQL 8 branches of the reader run
against this: a connection object that answers the reader's statements with rows shaped as MySQL 8.0 documents them
(information_schema columns, SHOW GRANTS text, error codes) and refuses what MySQL 8 refuses, with pymysql's own
exception classes and error numbers. The rows were written from the MySQL 8.0 Reference Manual (sections on
INFORMATION_SCHEMA TABLES, COLUMNS, STATISTICS, TABLE_CONSTRAINTS, CHECK_CONSTRAINTS, ROUTINES, VIEW_TABLE_USAGE,
SHOW CREATE VIEW, SHOW GRANTS and information_schema_stats_expiry), not captured from a server: README lists what
was verified on a real server and what on these rows only.

Every statement is matched by the information_schema table (or SHOW / @@ variable) it reads; one these rows do
not know fails the test, so a new query in the reader cannot pass here unnoticed. Each statement is kept in `seen`.
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime

import pymysql.err

DB = "shop"
USER = "catalog_reader"


def _rows_for(table_rows: list[dict], args) -> list[dict]:
    wanted = set(args or ())
    return [r for r in table_rows if r["db"] in wanted]


class MySQL8:
    """Server state: one database `shop` with a table, a view on it, an index, a check constraint and a routine."""

    def __init__(self, version: str = "8.0.36", grants: tuple[str, ...] = (), stats_expiry: int = 86400):
        self.version = version
        self.grants = [
            f"GRANT USAGE ON *.* TO `{USER}`@`%`",
            f"GRANT REFERENCES, SHOW VIEW ON `{DB}`.* TO `{USER}`@`%`",
            *grants,
        ]
        self.stats_expiry = stats_expiry
        self.seen: list[str] = []
        self.number = tuple(int(x) for x in re.match(r"(\d+)\.(\d+)\.(\d+)", version).groups())

    @property
    def routine_text_visible(self) -> bool:
        return any("SHOW_ROUTINE" in g for g in self.grants)

    # --- what each statement answers ---
    def answer(self, sql: str, args) -> list[dict]:
        self.seen.append(sql)
        if sql == "SELECT VERSION() AS v":
            return [{"v": self.version}]
        if sql == "SHOW GRANTS":
            return [{f"Grants for {USER}@%": g} for g in self.grants]
        if sql == "SELECT @@information_schema_stats_expiry AS e":
            return [{"e": self.stats_expiry}]
        if sql.startswith("SELECT SCHEMA_NAME AS db, 's' AS part"):  # the fingerprint's cheap parts
            assert "SCHEMA_COMMENT" not in sql, "MySQL has no SCHEMA_COMMENT"
            parts = [("s", 1, 11), ("t", 2, 22), ("c", 4, 44)]
            if "information_schema.ROUTINES" in sql:
                parts.append(("p", 1 if self.routine_text_visible else 0, 55))
            if "information_schema.KEY_COLUMN_USAGE" in sql:  # one statement with the key parts (first tick)
                assert "information_schema.STATISTICS" in sql
                parts += [("k", 1, 7), ("i", 1, 7)]
            return [{"db": DB, "part": p, "n": n, "h": h} for p, n, h in parts] + [
                {"db": "mysql", "part": "t", "n": 40, "h": 1}
            ]  # a system database: never fingerprinted
        if sql.startswith("SELECT TABLE_SCHEMA AS db, 'k' AS part"):  # the fingerprint's key parts
            assert "information_schema.STATISTICS" in sql
            return [{"db": DB, "part": p, "n": 1, "h": 7} for p in ("k", "i")]
        if sql.startswith("SHOW CREATE TABLE"):
            # MySQL 8: SHOW CREATE VIEW (and SHOW CREATE TABLE of a view) needs SELECT on the view besides SHOW VIEW
            raise pymysql.err.OperationalError(
                1142, f"SELECT command denied to user '{USER}'@'10.0.0.7' for table 'recent_orders'"
            )
        table = re.search(r"FROM information_schema\.(\w+)", sql)
        name = table.group(1) if table else None
        if name == "SCHEMATA":
            assert "SCHEMA_COMMENT" not in sql, "MySQL has no SCHEMA_COMMENT"
            return [{"name": DB, "charset": "utf8mb4", "collation": "utf8mb4_0900_ai_ci"}]
        if name == "TABLES":
            return _rows_for(
                [
                    {
                        "db": DB,
                        "name": "orders",
                        "table_type": "BASE TABLE",
                        "engine": "InnoDB",
                        "row_estimate": 1200,
                        "data_length": 81920,
                        "index_length": 16384,
                        "create_time": datetime(2026, 1, 5, 9, 0),
                        "update_time": None,
                        "comment": "Orders",
                        "collation": "utf8mb4_0900_ai_ci",
                    },
                    # MySQL 8 gives a view NULL engine and sizes, and 'VIEW' as its comment
                    {
                        "db": DB,
                        "name": "recent_orders",
                        "table_type": "VIEW",
                        "engine": None,
                        "row_estimate": None,
                        "data_length": None,
                        "index_length": None,
                        "create_time": datetime(2026, 1, 5, 9, 0),
                        "update_time": None,
                        "comment": "VIEW",
                        "collation": None,
                    },
                ],
                args,
            )
        if name == "COLUMNS":
            col = dict(db=DB, dflt=None, col_key="", extra="", gen_expr="", comment="", charset=None, collation=None)
            return _rows_for(
                [
                    {
                        **col,
                        "tbl": "orders",
                        "name": "id",
                        "ordinal": 1,
                        "nullable": "NO",
                        "data_type": "bigint",
                        "column_type": "bigint unsigned",
                        "col_key": "PRI",
                        "extra": "auto_increment",
                    },
                    {
                        **col,
                        "tbl": "orders",
                        "name": "total",
                        "ordinal": 2,
                        "nullable": "NO",
                        "data_type": "decimal",
                        "column_type": "decimal(12,2)",
                        "col_key": "MUL",
                    },
                    {
                        **col,
                        "tbl": "orders",
                        "name": "paid",
                        "ordinal": 3,
                        "nullable": "NO",
                        "data_type": "bit",
                        "column_type": "bit(1)",
                    },
                    {
                        **col,
                        "tbl": "recent_orders",
                        "name": "id",
                        "ordinal": 1,
                        "nullable": "NO",
                        "data_type": "bigint",
                        "column_type": "bigint unsigned",
                    },
                ],
                args,
            )
        if name == "KEY_COLUMN_USAGE":
            return _rows_for(
                [
                    {
                        "db": DB,
                        "tbl": "orders",
                        "name": "PRIMARY",
                        "col": "id",
                        "ordinal": 1,
                        "ref_db": None,
                        "ref_tbl": None,
                        "ref_col": None,
                    }
                ],
                args,
            )
        if name == "REFERENTIAL_CONSTRAINTS":
            return []
        if name == "STATISTICS":
            return _rows_for(
                [
                    {
                        "db": DB,
                        "tbl": "orders",
                        "name": "by_total",
                        "non_unique": 1,
                        "seq": 1,
                        "col": "total",
                        "sub_part": None,
                        "index_type": "BTREE",
                        "comment": "",
                    }
                ],
                args,
            )
        if name == "TABLE_CONSTRAINTS":  # the MySQL branch of check constraints (its CHECK_CONSTRAINTS has no table)
            assert self.number >= (8, 0, 16), "CHECK_CONSTRAINTS exists from MySQL 8.0.16"
            assert "JOIN information_schema.CHECK_CONSTRAINTS" in sql
            return _rows_for([{"db": DB, "tbl": "orders", "name": "orders_chk_1", "clause": "(`total` >= 0)"}], args)
        if name == "CHECK_CONSTRAINTS":
            raise AssertionError("MySQL's CHECK_CONSTRAINTS has no TABLE_NAME: read through TABLE_CONSTRAINTS")
        if name == "TRIGGERS":
            return []  # visible with the TRIGGER privilege only
        if name == "ROUTINES":
            has_language = "EXTERNAL_LANGUAGE AS lang" in sql
            assert has_language == (self.number >= (8, 0, 32)), "EXTERNAL_LANGUAGE exists from MySQL 8.0.32"
            if not self.routine_text_visible:
                return []  # MySQL 8 lists routines to an account with a privilege on them; ours has none
            return _rows_for(
                [
                    {
                        "db": DB,
                        "name": "close_day",
                        "routine_type": "PROCEDURE",
                        "definition": "BEGIN UPDATE orders SET paid = 1 WHERE total > 0; END",
                        "comment": "",
                        "return_type": None,
                        "lang": "SQL" if has_language else None,
                        "is_deterministic": "NO",
                        "data_access": "MODIFIES SQL DATA",
                        "security_type": "DEFINER",
                    }
                ],
                args,
            )
        if name == "VIEW_TABLE_USAGE":
            assert self.number >= (8, 0, 13), "VIEW_TABLE_USAGE exists from MySQL 8.0.13"
            return [{"view_name": "recent_orders", "db": DB, "tbl": "orders"}] if args == [DB] else []
        raise AssertionError(f"statement these hand-written rows do not answer: {sql[:200]}")


class ManualRowsConnection:
    """What MySQLReader uses of a pymysql connection: cursor() as a context manager, execute, fetchall."""

    def __init__(self, server: MySQL8):
        self.server = server

    @contextmanager
    def cursor(self, _cls=None):
        yield _Cursor(self.server)

    def close(self) -> None:
        pass


class _Cursor:
    def __init__(self, server: MySQL8):
        self.server, self.rows = server, []

    def execute(self, sql, args=None):
        self.rows = self.server.answer(sql, list(args) if args else [])

    def fetchall(self):
        return self.rows
