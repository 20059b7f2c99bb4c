"""Dagster wiring only: partitions, assets, sensors, schedules, checks. No SQL here."""
