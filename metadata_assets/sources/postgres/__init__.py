"""PostgreSQL (`type: postgres`): config.py (the source's YAML), reader.py (pg_catalog, a connection per database),
mcps.py (the emitter's hooks: schemas as containers, PostgreSQL types), kind.py (the SourceKind)."""
