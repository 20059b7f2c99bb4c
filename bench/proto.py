"""Prototypes of core changes, measured by `run.py --proto` (contender `proto`). The product never imports this.

Each prototype is a monkeypatch of a core function with a cheaper equivalent, so its effect can be measured on the
real path before anyone changes the core:
  1. serialize_mcps without MetadataChangeProposalWrapper.to_obj's JSON round trip (byte-identical: checked by
     bench/phases.py on every database it sees);
  2. Database.to_dict without dataclasses.asdict's recursive deep copy (same dict);
  3. skip unchanged: when the previous snapshot has the same schema hash and the MCE file exists, build no
     proposals, parse no view SQL, write nothing (the push already ignores files whose data version is unchanged;
     the only loss is that row-count/size properties in the file are refreshed when the schema changes, not daily).
"""

from __future__ import annotations

import json


def install_fast_paths() -> None:
    from metadata_assets.catalog import Database
    from metadata_assets.datahub import files
    from phases import fast_serialize, fast_to_dict

    files.serialize_mcps = fast_serialize
    Database.to_dict = fast_to_dict


def install_skip_unchanged() -> None:
    from metadata_assets import extract as ex
    from metadata_assets.catalog import Database
    from metadata_assets.datahub import files

    original = ex.write_database

    def write_database(store, source_name, db, rules, lineage):
        previous_raw = store.read_bytes(files.snapshot_key(source_name, db.name))
        if previous_raw is not None:
            previous = Database.from_dict(json.loads(previous_raw))
            mce = files.mce_key(source_name, db.name)
            h = db.schema_hash()
            if previous.schema_hash() == h and store.read_bytes(mce) is not None:
                t_cov, c_cov = db.coverage()
                return ex.DatabaseResult(
                    database=db.name, ok=True, uri=store.uri(mce), tables=db.n_tables, views=db.n_views,
                    columns=db.n_columns, table_doc_coverage=t_cov, column_doc_coverage=c_cov, schema_hash=h,
                    data_version=ex.data_version(db, rules), warnings=list(db.warnings), snapshot=db,
                    previous=previous)
        return original(store, source_name, db, rules, lineage)

    ex.write_database = write_database
