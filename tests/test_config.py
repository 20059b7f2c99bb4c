"""Bad configuration gives one clear error naming the file, the source and the field."""

import subprocess
import sys
import textwrap

import pytest

from metadata_assets.config import ConfigError, check_secrets, load

GOOD = """
sources:
  - name: prod_orders
    type: mysql
    host: db.internal
    user: catalog_reader
    password_env: ORDERS_PW
    database_pattern: {allow: ["orders_.*"], deny: ["orders_tmp"]}
"""


def write(tmp_path, text):
    p = tmp_path / "sources.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def test_good_config_defaults(tmp_path, monkeypatch):
    monkeypatch.setenv("ORDERS_PW", "x")
    cfg = load(write(tmp_path, GOOD))
    (s,) = cfg.sources
    assert (s.port, s.env, s.include_views, s.platform_instance) == (3306, "PROD", True, None)
    assert s.database_allowed("orders_eu") and not s.database_allowed("orders_tmp")
    assert not s.database_allowed("shop")
    for system in ("information_schema", "mysql", "performance_schema", "sys", "MySQL"):
        assert not s.database_allowed(system)
    check_secrets(cfg)


def test_patterns_have_datahub_semantics(tmp_path):
    from datahub.configuration.common import AllowDenyPattern

    cfg = load(write(tmp_path, GOOD.replace('allow: ["orders_.*"]', 'allow: ["Orders_.*", "x"]')))
    ours, theirs = cfg.sources[0].database_pattern, AllowDenyPattern(allow=["Orders_.*", "x"], deny=["orders_tmp"])
    for name in ("orders_eu", "ORDERS_EU", "x", "xy", "orders_tmp", "a_orders_eu"):
        assert ours.allowed(name) == theirs.allowed(name), name


@pytest.mark.parametrize("mutation, expected", [
    (('allow: ["orders_.*"]', 'allow: ["orders_(.*"]'),
     "source 'prod_orders', field database_pattern.allow: invalid regex 'orders_(.*'"),
    (("    user: catalog_reader\n", "    user: catalog_reader\n    pasword_env: X\n"),
     "source 'prod_orders', field pasword_env: unknown key"),
    (("    password_env: ORDERS_PW\n", "    password_env: ORDERS_PW\n    password: hunter2\n"),
     "source 'prod_orders', field password: unknown key (passwords are never inline: use password_env)"),
    (("    host: db.internal\n", ""), "source 'prod_orders', field host: Field required"),
    (("type: mysql", "type: oracle"), "source 'prod_orders', field type: unknown source type 'oracle'"),
    (("host: db.internal", "host: db.internal\n    env: STAGING"), "source 'prod_orders', field env: unknown env"),
])
def test_bad_config_names_file_source_and_field(tmp_path, mutation, expected):
    path = write(tmp_path, GOOD.replace(*mutation))
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(path) in str(e.value)
    assert expected in str(e.value)


def test_duplicate_source_name(tmp_path):
    text = GOOD + GOOD.split("sources:\n", 1)[1]
    with pytest.raises(ConfigError, match="duplicate source name 'prod_orders'"):
        load(write(tmp_path, text))


def test_missing_password_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("ORDERS_PW", raising=False)
    path = write(tmp_path, GOOD)
    with pytest.raises(ConfigError, match=r"source 'prod_orders': environment variable ORDERS_PW \(password_env\) is not set"):
        check_secrets(load(path))


def test_env_expansion_and_missing_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DBHOST", "10.1.2.3")
    cfg = load(write(tmp_path, GOOD.replace("db.internal", "${DBHOST}").replace("user: catalog_reader",
                                                                                  "user: ${DBUSER:-reader}")))
    assert (cfg.sources[0].host, cfg.sources[0].user) == ("10.1.2.3", "reader")
    monkeypatch.delenv("DBHOST")
    with pytest.raises(ConfigError, match=r"config.sources\[0\].host: environment variable DBHOST is not set"):
        load(write(tmp_path, GOOD.replace("db.internal", "${DBHOST}")))


def test_not_yaml_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not valid YAML"):
        load(write(tmp_path, "sources: [\n"))
    with pytest.raises(ConfigError, match="cannot read config"):
        load(tmp_path / "nope.yaml")


def test_definitions_load_fails_with_one_clear_line(tmp_path):
    """What a user sees when Dagster loads a broken config: the message first, not a trace from deep inside."""
    import os
    from pathlib import Path

    path = write(tmp_path, GOOD.replace('allow: ["orders_.*"]', 'allow: ["orders_(.*"]'))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-m", "metadata_assets.definitions"],
        env={**os.environ, "METADATA_ASSETS_CONFIG": str(path), "DAGSTER_HOME": str(tmp_path)},
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (f"metadata_assets.config.ConfigError: {path}: source 'prod_orders', field database_pattern.allow: "
            "invalid regex 'orders_(.*'") in out
