"""Where a source's files live in a store. Per source, under the store root:
    <source>/mce/<database>.json        the MCE file (what `datahub ingest` with the file source reads)
    <source>/snapshots/<database>.json  the catalog snapshot it was built from (for diffs)
    <source>/versions/<database>.json   the file's data version and sha256 (version_key)
Database names are percent-encoded into file names (see encode_name), so any name (spaces, slashes, dots) is safe.
What these files hold, and in which order they are written: database_files.py.
"""

from __future__ import annotations

import urllib.parse

from metadata_assets.storage.store import Store

# Kept as they are in file and object names: ASCII letters, digits, '_', '-' and printable non-ASCII characters.
# Everything else ('.', '/', '%', spaces, controls) is percent-encoded. Leaving non-ASCII raw keeps the longest
# database name (64 BMP characters, at most 3 UTF-8 bytes each) well inside the 255-byte file name limit, where
# percent-encoding every byte would need up to 9 bytes a character.
_SAFE_ASCII = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def encode_name(database: str) -> str:
    return "".join(
        c
        if c in _SAFE_ASCII or (c > "\x7f" and c.isprintable())
        else urllib.parse.quote(c, safe="").replace(".", "%2E")
        for c in database
    )


def decode_name(file_stem: str) -> str:
    return urllib.parse.unquote(file_stem)


def mce_key(source: str, database: str) -> str:
    return f"{source}/mce/{encode_name(database)}.json"


def snapshot_key(source: str, database: str) -> str:
    return f"{source}/snapshots/{encode_name(database)}.json"


def version_key(source: str, database: str) -> str:
    """A few hundred bytes per database: the data version of its MCE file, the file's sha256, its proposal count and
    warnings (database_files.read_version). Written after the snapshot, deleted with it: what an unchanged extraction
    and the push plan read instead of the whole snapshot (bench/NOTES.md: its size at 10,000 tables)."""
    return f"{source}/versions/{encode_name(database)}.json"


def list_mce_databases(store: Store, source: str) -> list[str]:
    return sorted(
        decode_name(k.rsplit("/", 1)[1][: -len(".json")]) for k in store.list(f"{source}/mce") if k.endswith(".json")
    )
