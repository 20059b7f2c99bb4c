"""PostgreSQL (`type: postgres`): config.py (the source's YAML), reader.py (pg_catalog, a connection per database),
emitter.py (the SQL emitter's hooks: schemas as containers, PostgreSQL types), access.py (check-access probes),
kind.py (the SourceKind)."""
