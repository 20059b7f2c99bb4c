"""Storage: stores (store.py: the Store protocol and the local directory; gcs.py: gs://; locks.py), where a
source's files live in one (layout.py), and a database's stored files (database_files.py). No Dagster here, and no
DataHub: what the files hold is written elsewhere.
"""
