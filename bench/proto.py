"""Prototypes of core changes, measured by `run.py --proto` (contender `proto`). The product never imports this.

Each prototype is a monkeypatch of a core function with a cheaper equivalent, so its effect can be measured on the
real path before anyone changes the core. 1, 2 and 4 have since been adopted by the core (commits e80ebd3, 83a1e1c,
588b316); they stay here as the record of what was measured, and the `proto` contender now only adds 3:
  1. serialize_mcps without MetadataChangeProposalWrapper.to_obj's JSON round trip (byte-identical);
  2. Database.to_dict without dataclasses.asdict's recursive deep copy (same dict), schema hash once;
  4. install_union_reads: per-database UNION ALL reads instead of IN lists (below);
  3. skip unchanged: when the previous snapshot has the same schema hash and the MCE file exists, build no
     proposals, parse no view SQL, write nothing (the push already ignores files whose data version is unchanged;
     the only loss is that row-count/size properties in the file are refreshed when the schema changes, not daily).
"""

from __future__ import annotations

import json


def install_fast_paths() -> None:
    from phases import fast_serialize, fast_to_dict

    from metadata_assets.catalog import Database
    from metadata_assets.datahub import mce_json

    mce_json.serialize_mcps = fast_serialize
    Database.to_dict = fast_to_dict


def install_skip_unchanged() -> None:
    from metadata_assets import extract as ex
    from metadata_assets.storage.database_files import data_version
    from metadata_assets.storage.layout import mce_key, snapshot_key

    original = ex.write_database

    def write_database(store, source_name, db, rules, lineage):
        previous_raw = store.read_bytes(snapshot_key(source_name, db.name))
        if previous_raw is not None:
            previous_version = json.loads(previous_raw).get("data_version")
            h = db.schema_hash()
            version = data_version(db, rules, h)
            mce = mce_key(source_name, db.name)
            if previous_version == version and store.read_bytes(mce) is not None:
                t_cov, c_cov = db.coverage()
                return ex.DatabaseResult(
                    database=db.name,
                    ok=True,
                    uri=store.uri(mce),
                    tables=db.n_tables,
                    views=db.n_views,
                    columns=db.n_columns,
                    table_doc_coverage=t_cov,
                    column_doc_coverage=c_cov,
                    schema_hash=h,
                    data_version=version,
                    warnings=list(db.warnings),
                    snapshot=db,
                )
        return original(store, source_name, db, rules, lineage)

    ex.write_database = write_database


def _union_per_database(sql: str, args: tuple) -> tuple[str, tuple] | None:
    """`... WHERE <col> IN (%s, ...) <rest>` -> one `... WHERE <col> = %s <rest>` branch per database, UNION ALL.

    MariaDB answers `TABLE_SCHEMA IN (...)` on information_schema by scanning every database on the server
    (EXPLAIN: "Scanned all databases") and `TABLE_SCHEMA = 'x'` by scanning one ("Scanned 1 database").
    """
    import re

    m = re.search(r"WHERE (\w+(?:\.\w+)?) IN \(((?:%s, )*%s)\)", sql)
    if not m:
        return None
    n = m.group(2).count("%s")
    head, tail = sql[: m.start()], sql[m.end() :]
    branch = f"{head}WHERE {m.group(1)} = %s{tail}"
    rest = tuple(args[n:])
    return " UNION ALL ".join([branch] * n), tuple(a for v in args[:n] for a in (v, *rest))


def install_union_reads() -> None:
    """Reader prototype: per-database UNION ALL instead of IN lists, and the key query split in two (KEY_COLUMN_USAGE,
    REFERENTIAL_CONSTRAINTS, each per database) joined in Python instead of a server-side join of two whole-server
    scans. Same rows, same dict keys."""
    from metadata_assets.sources import mysql

    original = mysql.MySQLReader.query

    def query(self, sql, args=()):
        if "LEFT JOIN information_schema.REFERENTIAL_CONSTRAINTS" in sql:
            dbs = tuple(args)
            keys_sql = (
                "SELECT TABLE_SCHEMA AS db, TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, COLUMN_NAME AS col, "
                "ORDINAL_POSITION AS ordinal, REFERENCED_TABLE_SCHEMA AS ref_db, REFERENCED_TABLE_NAME AS "
                "ref_tbl, REFERENCED_COLUMN_NAME AS ref_col FROM information_schema.KEY_COLUMN_USAGE "
                "WHERE TABLE_SCHEMA = %s AND (CONSTRAINT_NAME = 'PRIMARY' OR REFERENCED_TABLE_NAME IS NOT NULL)"
            )
            refs_sql = (
                "SELECT CONSTRAINT_SCHEMA AS db, TABLE_NAME AS tbl, CONSTRAINT_NAME AS name, "
                "UPDATE_RULE AS on_update, DELETE_RULE AS on_delete "
                "FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = %s"
            )
            keys = original(self, " UNION ALL ".join([keys_sql] * len(dbs)), dbs)
            refs = {
                (r["db"], r["tbl"], r["name"]): r
                for r in original(self, " UNION ALL ".join([refs_sql] * len(dbs)), dbs)
            }
            for k in keys:
                r = refs.get((k["db"], k["tbl"], k["name"]), {})
                k["on_update"], k["on_delete"] = r.get("on_update"), r.get("on_delete")
            return keys
        rewritten = _union_per_database(sql, tuple(args)) if "information_schema" in sql else None
        return original(self, *rewritten) if rewritten else original(self, sql, args)

    mysql.MySQLReader.query = query
