"""The per-database fingerprint (one information_schema query) moves with every DDL change and never with data."""

import pytest

from metadata_assets.sources.mysql import MySQLReader, connect

BASE = (
    "CREATE TABLE parent (id INT PRIMARY KEY, code VARCHAR(10)) COMMENT 'parents'",
    "CREATE TABLE t (id INT NOT NULL AUTO_INCREMENT PRIMARY KEY, "
    "name VARCHAR(20) NULL DEFAULT 'x' COMMENT 'the name', qty INT NOT NULL DEFAULT 0, parent_id INT) "
    "COMMENT 'a table'",
    "CREATE VIEW v AS SELECT id, name FROM t",
)

# Each statement runs after the previous ones; every one must change the fingerprint.
DDL = [
    ("add table", "CREATE TABLE extra (id INT)"),
    ("drop table", "DROP TABLE extra"),
    ("add column", "ALTER TABLE t ADD COLUMN note TEXT"),
    ("drop column", "ALTER TABLE t DROP COLUMN note"),
    ("rename column", "ALTER TABLE t RENAME COLUMN qty TO quantity"),
    ("type change", "ALTER TABLE t MODIFY name VARCHAR(40) NULL DEFAULT 'x' COMMENT 'the name'"),
    ("NOT NULL", "ALTER TABLE t MODIFY name VARCHAR(40) NOT NULL DEFAULT 'x' COMMENT 'the name'"),
    ("default", "ALTER TABLE t ALTER COLUMN name SET DEFAULT 'y'"),
    ("column comment", "ALTER TABLE t MODIFY name VARCHAR(40) NOT NULL DEFAULT 'y' COMMENT 'renamed'"),
    ("table comment", "ALTER TABLE t COMMENT 'another comment'"),
    ("engine", "CREATE TABLE aria (id INT) ENGINE=InnoDB"),
    ("engine", "ALTER TABLE aria ENGINE=Aria"),
    ("column collation", "ALTER TABLE parent MODIFY code VARCHAR(10) COLLATE utf8mb4_bin"),
    ("index (column key)", "CREATE INDEX ix_quantity ON t (quantity)"),
    ("unique key", "ALTER TABLE parent ADD UNIQUE KEY uq_code (code)"),
    # only STATISTICS sees these: the columns' COLUMN_KEY stays MUL
    ("second index on a keyed column", "CREATE INDEX ix_quantity_name ON t (quantity, name)"),
    ("index renamed", "ALTER TABLE t RENAME INDEX ix_quantity_name TO ix_qn"),
    ("primary key", "ALTER TABLE parent DROP PRIMARY KEY, ADD PRIMARY KEY (id, code)"),
    ("add foreign key", "ALTER TABLE parent DROP PRIMARY KEY, ADD PRIMARY KEY (id)"),
    ("add foreign key", "ALTER TABLE t ADD CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id)"),
    (
        "foreign key rule",
        (
            "ALTER TABLE t DROP FOREIGN KEY fk_parent",  # same FK, only its rule differs after both
            "ALTER TABLE t ADD CONSTRAINT fk_parent FOREIGN KEY (parent_id) REFERENCES parent (id) ON DELETE CASCADE",
        ),
    ),
    ("create view", "CREATE VIEW v2 AS SELECT id FROM parent"),
    ("view columns", "CREATE OR REPLACE VIEW v2 AS SELECT id, code FROM parent"),
    ("drop view", "DROP VIEW v2"),
    ("database charset", "ALTER DATABASE {db} CHARACTER SET latin1"),
    ("database comment", "ALTER DATABASE {db} COMMENT 'described'"),  # MariaDB only
]

DATA = [
    "INSERT INTO parent VALUES (1, 'a'), (2, 'b')",
    "INSERT INTO t (name, qty, parent_id) VALUES ('n', 1, 1), ('m', 2, 2)",
    "UPDATE t SET qty = qty + 1",
    "DELETE FROM t WHERE qty > 2",
    "ANALYZE TABLE t",
    "OPTIMIZE TABLE parent",
    "TRUNCATE TABLE t",
]


@pytest.fixture
def probe(schema):
    db = schema.create("fp", *BASE)
    other = schema.create("other", "CREATE TABLE o (id INT)")
    schema.grant()
    source = schema.source()
    conn = connect(source)
    reader = MySQLReader(conn)

    def fingerprints() -> dict[str, str]:
        return reader.fingerprints(source)

    def run(stmt) -> None:
        stmts = (stmt,) if isinstance(stmt, str) else stmt
        schema.server.execute(f"USE `{db}`", *(s.format(db=f"`{db}`") for s in stmts))

    yield db, other, fingerprints, run
    conn.close()


def test_every_ddl_change_moves_only_its_databases_fingerprint(probe):
    db, other, fingerprints, run = probe
    before = fingerprints()
    assert set(before) == {db, other}
    unchanged = []
    for label, stmt in DDL:
        run(stmt)
        after = fingerprints()
        if after[db] == before[db]:
            unchanged.append(label)
        assert after[other] == before[other], f"{label}: another database's fingerprint moved"
        before = after
    assert unchanged == [], f"DDL changes the fingerprint misses: {unchanged}"


def test_data_changes_never_move_the_fingerprint(probe):
    db, other, fingerprints, run = probe
    before = fingerprints()
    for stmt in DATA:
        run(stmt)
        assert fingerprints() == before, f"fingerprint moved after data-only statement: {stmt}"


def test_view_sql_is_invisible_to_the_least_privilege_account(probe):
    """Known limit: VIEW_DEFINITION is empty without SELECT, so a view redefined with the same columns (same names,
    types, order) keeps its fingerprint. The view's MCE file (SQL, lineage) catches up on the daily schedule."""
    db, other, fingerprints, run = probe
    before = fingerprints()
    run("CREATE OR REPLACE VIEW v AS SELECT id, name FROM t WHERE id > 10")
    assert fingerprints()[db] == before[db]


def test_only_allowed_and_visible_databases_have_a_fingerprint(schema):
    allowed = schema.create("keep", "CREATE TABLE a (id INT)")
    denied = schema.create("skip", "CREATE TABLE a (id INT)")
    empty = schema.create("empty")
    hidden = schema.create("hidden", "CREATE TABLE a (id INT)")
    schema.grant([allowed, denied, empty])  # no grant on `hidden`: the account cannot see it
    source = schema.source(database_pattern={"allow": [f"{schema.prefix}.*"], "deny": [".*_skip"]})
    conn = connect(source)
    try:
        fps = MySQLReader(conn).fingerprints(source)
    finally:
        conn.close()
    assert set(fps) == {allowed, empty}
    assert hidden not in fps


def test_key_parts_rotate_over_ticks_and_carry_over(schema, monkeypatch):
    """Key parts are read for a slice of databases per tick; the others keep the cursor's key digest."""
    import zlib

    from metadata_assets.defs import source_reads
    from metadata_assets.sources.mysql import kind as mysql_kind

    dbs = [
        schema.create(
            f"k{i}",
            "CREATE TABLE p (id INT PRIMARY KEY)",
            "CREATE TABLE c (id INT PRIMARY KEY, p_id INT, KEY ix_p (p_id), "
            "CONSTRAINT fk_p FOREIGN KEY (p_id) REFERENCES p (id))",
        )
        for i in range(3)
    ]
    schema.grant()
    source = schema.source()
    monkeypatch.setattr(mysql_kind, "KEY_SLICE", 1)  # 3 databases: 3 slices, one database's keys per tick
    first = source_reads.read_fingerprints(source)  # empty cursor: everything is read
    assert sorted(first) == sorted(dbs) and all("." in v for v in first.values())
    for tick in range(3):  # nothing changed: every slice gives the same digests
        assert source_reads.read_fingerprints(source, first, tick=tick) == first

    target = dbs[1]
    # a key-only change: same columns, same index, another ON DELETE rule
    schema.server.execute(
        f"ALTER TABLE `{target}`.c DROP FOREIGN KEY fk_p",
        f"ALTER TABLE `{target}`.c ADD CONSTRAINT fk_p FOREIGN KEY (p_id) REFERENCES p (id) ON DELETE CASCADE",
    )
    its_tick = zlib.crc32(target.encode()) % 3
    other_tick = (its_tick + 1) % 3
    assert source_reads.read_fingerprints(source, first, tick=other_tick) == first  # not its turn yet
    seen = source_reads.read_fingerprints(source, first, tick=its_tick)
    assert [db for db in dbs if seen[db] != first[db]] == [target]
    assert seen[target].split(".")[0] == first[target].split(".")[0]  # tables and columns did not move

    new = schema.create("k9", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant([new])
    with_new = source_reads.read_fingerprints(source, seen, tick=other_tick)
    full = source_reads.read_fingerprints(source)
    assert with_new[new] == full[new]  # a database new to the cursor gets its keys read at once


def test_routines_move_the_fingerprint_when_visible(schema):
    db = schema.create("fpr", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    schema.server.execute(f"GRANT SELECT ON mysql.proc TO '{schema.user}'@'%'")  # the optional routine grant
    source = schema.source()
    conn = connect(source)
    try:
        reader = MySQLReader(conn)
        seen = [reader.fingerprints(source)[db]]
        for stmt in (
            "CREATE PROCEDURE p() BEGIN SELECT 1; END",
            "DROP PROCEDURE p",
            "CREATE PROCEDURE p() BEGIN SELECT 2; END",
            "CREATE FUNCTION f(x INT) RETURNS INT RETURN x",
        ):
            schema.server.execute(f"USE `{db}`", stmt)
            seen.append(reader.fingerprints(source)[db])
            assert seen[-1] != seen[-2], stmt
        assert reader.fingerprints(schema.source(include_stored_procedures=False))[db] != seen[-1]
    finally:
        conn.close()
