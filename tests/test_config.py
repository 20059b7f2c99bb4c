"""Bad configuration gives one clear error naming the file, the source and the field."""

import subprocess
import sys
import textwrap

import pytest

from metadata_assets.config import ConfigError, check_secrets, load
from metadata_assets.defs.source_setup import SourceSetup

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


@pytest.mark.parametrize(
    "mutation, expected",
    [
        (
            ('allow: ["orders_.*"]', 'allow: ["orders_(.*"]'),
            "source 'prod_orders', field database_pattern.allow: invalid regex 'orders_(.*'",
        ),
        (
            ("    user: catalog_reader\n", "    user: catalog_reader\n    pasword_env: X\n"),
            "source 'prod_orders', field pasword_env: unknown key",
        ),
        (
            ("    password_env: ORDERS_PW\n", "    password_env: ORDERS_PW\n    password: hunter2\n"),
            "source 'prod_orders', field password: unknown key (passwords are never inline: use password_env)",
        ),
        (("    host: db.internal\n", ""), "source 'prod_orders', field host: Field required"),
        (("type: mysql", "type: oracle"), "source 'prod_orders', field type: unknown source type 'oracle'"),
        (("host: db.internal", "host: db.internal\n    env: STAGING"), "source 'prod_orders', field env: unknown env"),
    ],
)
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
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(e.value) == (
        f"{path}: source 'prod_orders', field name: duplicate source name 'prod_orders' "
        "(sources[0] and sources[1]): each source needs its own name"
    )


def test_missing_password_variable_is_named(tmp_path, monkeypatch):
    monkeypatch.delenv("ORDERS_PW", raising=False)
    path = write(tmp_path, GOOD)
    with pytest.raises(
        ConfigError, match=r"source 'prod_orders': environment variable ORDERS_PW \(password_env\) is not set"
    ):
        check_secrets(load(path))


def test_env_expansion_and_missing_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("DBHOST", "10.1.2.3")
    cfg = load(
        write(
            tmp_path,
            GOOD.replace("db.internal", "${DBHOST}").replace("user: catalog_reader", "user: ${DBUSER:-reader}"),
        )
    )
    assert (cfg.sources[0].host, cfg.sources[0].user) == ("10.1.2.3", "reader")
    monkeypatch.delenv("DBHOST")
    path = write(tmp_path, GOOD.replace("db.internal", "${DBHOST}"))
    with pytest.raises(ConfigError) as e:  # the source by name, not its position in the list
        load(path)
    assert str(e.value) == (
        f"{path}: source 'prod_orders', field host: environment variable DBHOST is not set and has no default"
    )


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
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert (
        f"metadata_assets.config.ConfigError: {path}: source 'prod_orders', field database_pattern.allow: "
        "invalid regex 'orders_(.*'"
    ) in out


BIGQUERY = """
sources:
  - name: warehouse
    type: bigquery
    project: acme-analytics
"""


def test_new_fields_defaults(tmp_path):
    cfg = load(write(tmp_path, GOOD))
    s = cfg.sources[0]
    assert (s.connect_timeout_s, s.query_timeout_s, s.batch_size, s.max_concurrent_runs) == (10, 300, 200, 2)
    assert cfg.datahub.push_deadline_s == 1800
    assert (cfg.datahub.rest.timeout_s, cfg.datahub.rest.retries, cfg.datahub.rest.batch_size) == (30, 5, 100)
    tuned = load(
        write(
            tmp_path,
            GOOD + "    connect_timeout_s: 2.5\n    query_timeout_s: 0.5\n"
            "    batch_size: 1000\n    max_concurrent_runs: 64\n    port: 65535\n"
            "datahub:\n  push_deadline_s: 86400\n"
            "  rest: {timeout_s: 3600, retries: 0, batch_size: 10000}\n",
        )
    )
    s = tuned.sources[0]
    assert (s.connect_timeout_s, s.query_timeout_s, s.batch_size, s.max_concurrent_runs, s.port) == (
        2.5,
        0.5,
        1000,
        64,
        65535,
    )
    assert (
        tuned.datahub.push_deadline_s,
        tuned.datahub.rest.timeout_s,
        tuned.datahub.rest.retries,
        tuned.datahub.rest.batch_size,
    ) == (86400, 3600, 0, 10000)


def test_latency_settings_defaults_and_tuning(tmp_path):
    cfg = load(write(tmp_path, GOOD))
    assert (cfg.sources[0].sensor_interval_s, cfg.datahub.push_from_extraction, cfg.datahub.push_sensor_interval_s) == (
        15,
        True,
        30,
    )
    tuned = load(
        write(
            tmp_path,
            GOOD + "    sensor_interval_s: 5\ndatahub: {push_from_extraction: false, push_sensor_interval_s: 86400}\n",
        )
    )
    assert (
        tuned.sources[0].sensor_interval_s,
        tuned.datahub.push_from_extraction,
        tuned.datahub.push_sensor_interval_s,
    ) == (5, False, 86400)
    bq = load(write(tmp_path, BIGQUERY))
    assert bq.sources[0].sensor_interval_s == 60  # each tick runs billed query jobs


def test_run_pod_size_per_source(tmp_path):
    import json

    from metadata_assets.defs.extraction import build_mce_asset
    from metadata_assets.defs.keys import EXTRACTION_POD, run_tags

    cfg = load(write(tmp_path, GOOD + "    run_pod: {cpu: '1', memory: 2Gi}\n"))
    source = cfg.sources[0]
    resources = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "2Gi"}}
    assert json.loads(run_tags(source)["dagster-k8s/config"])["container_config"]["resources"] == resources
    op_tags = build_mce_asset(SourceSetup.of(cfg, source)).op.tags["dagster-k8s/config"]
    assert (json.loads(op_tags) if isinstance(op_tags, str) else op_tags)["container_config"]["resources"] == resources
    default = load(write(tmp_path, GOOD)).sources[0]
    assert (
        (default.run_pod.cpu, default.run_pod.memory)
        == (EXTRACTION_POD["cpu"], EXTRACTION_POD["memory"])
        == ("250m", "512Mi")
    )


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("    port: 0\n", "source 'prod_orders', field port: Input should be greater than or equal to 1 (got 0)"),
        (
            "    port: 70000\n",
            "source 'prod_orders', field port: Input should be less than or equal to 65535 (got 70000)",
        ),
        ("    connect_timeout_s: 0\n", "source 'prod_orders', field connect_timeout_s: Input should be greater than 0"),
        (
            "    connect_timeout_s: 3601\n",
            "source 'prod_orders', field connect_timeout_s: Input should be less than or equal to 3600",
        ),
        ("    query_timeout_s: -1\n", "source 'prod_orders', field query_timeout_s: Input should be greater than 0"),
        (
            "    query_timeout_s: 86401\n",
            "source 'prod_orders', field query_timeout_s: Input should be less than or equal to 86400",
        ),
        ("    batch_size: 0\n", "source 'prod_orders', field batch_size: Input should be greater than or equal to 1"),
        (
            "    batch_size: 1001\n",
            "source 'prod_orders', field batch_size: Input should be less than or equal to 1000",
        ),
        (
            "    max_concurrent_runs: 0\n",
            "source 'prod_orders', field max_concurrent_runs: Input should be greater than or equal to 1",
        ),
        (
            "    max_concurrent_runs: 65\n",
            "source 'prod_orders', field max_concurrent_runs: Input should be less than or equal to 64",
        ),
        ("datahub:\n  push_deadline_s: 0\n", "field datahub.push_deadline_s: Input should be greater than 0"),
        (
            "datahub:\n  push_deadline_s: 86401\n",
            "field datahub.push_deadline_s: Input should be less than or equal to 86400",
        ),
        ("datahub:\n  rest: {timeout_s: 0}\n", "field datahub.rest.timeout_s: Input should be greater than 0"),
        (
            "datahub:\n  rest: {timeout_s: 3601}\n",
            "field datahub.rest.timeout_s: Input should be less than or equal to 3600",
        ),
        ("datahub:\n  rest: {retries: -1}\n", "field datahub.rest.retries: Input should be greater than or equal to 0"),
        ("datahub:\n  rest: {retries: 21}\n", "field datahub.rest.retries: Input should be less than or equal to 20"),
        (
            "datahub:\n  rest: {batch_size: 0}\n",
            "field datahub.rest.batch_size: Input should be greater than or equal to 1",
        ),
        (
            "datahub:\n  rest: {batch_size: 10001}\n",
            "field datahub.rest.batch_size: Input should be less than or equal to 10000",
        ),
        (
            "    sensor_interval_s: 4\n",
            "source 'prod_orders', field sensor_interval_s: Input should be greater than or equal to 5",
        ),
        (
            "    sensor_interval_s: 86401\n",
            "source 'prod_orders', field sensor_interval_s: Input should be less than or equal to 86400",
        ),
        (
            "datahub:\n  push_sensor_interval_s: 1\n",
            "field datahub.push_sensor_interval_s: Input should be greater than or equal to 5",
        ),
        (
            "datahub:\n  push_from_extraction: sometimes\n",
            "field datahub.push_from_extraction: Input should be a valid boolean",
        ),
        ("    run_pod: {memory: 512MB}\n", "source 'prod_orders', field run_pod.memory: String should match pattern"),
        ("    run_pod: {cpu: lots}\n", "source 'prod_orders', field run_pod.cpu: String should match pattern"),
    ],
)
def test_settings_that_cannot_work_are_refused_at_load(tmp_path, extra, expected):
    path = write(tmp_path, GOOD + extra)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(path) in str(e.value) and expected in str(e.value)


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("    batch_size: 1001\n", "source 'warehouse', field batch_size: Input should be less than or equal to 1000"),
        ("    batch_size: 0\n", "source 'warehouse', field batch_size: Input should be greater than or equal to 1"),
        (
            "    max_concurrent_runs: 65\n",
            "source 'warehouse', field max_concurrent_runs: Input should be less than or equal to 64",
        ),
    ],
)
def test_bigquery_bounds(tmp_path, extra, expected):
    load(write(tmp_path, BIGQUERY + "    batch_size: 1000\n    max_concurrent_runs: 64\n"))
    path = write(tmp_path, BIGQUERY + extra)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(path) in str(e.value) and expected in str(e.value)


@pytest.mark.parametrize(
    "regex",
    [
        "(a+)+$",
        "(a*)*",
        r"(\w+\s?)+$",
        "(x|(a+))+",
        "(?:(?:a+)b)*",
        "((a+)?)+",
        "(a{2,})+",
        "(a+){2,5}",
        r"orders_(\d+_?)*",
    ],
)
@pytest.mark.parametrize("which", ["allow", "deny"])
def test_regexes_that_can_backtrack_exponentially_are_refused(tmp_path, regex, which):
    pattern = f"{{{which}: ['{regex}']}}"  # YAML single quotes: backslashes as they are
    path = write(tmp_path, GOOD.replace('{allow: ["orders_.*"], deny: ["orders_tmp"]}', pattern))
    with pytest.raises(ConfigError) as e:
        load(path)
    msg = str(e.value)
    assert str(path) in msg
    assert (
        f"source 'prod_orders', field database_pattern.{which}: regex {regex!r} nests a repeat inside a repeat" in msg
    )
    assert "exponential time on some names" in msg and "'a+$'" in msg


# "(a|aa)+" was here until issue 29: it is exponential ((a|aa)+$ takes 0.36 s at 32 characters, x8 every 4 more),
# refused now by test_ambiguous_choices_under_a_repeat_are_refused
@pytest.mark.parametrize(
    "regex",
    [
        ".*",
        "shop_.*",
        "^(shop|billing)$",
        "[a-z_]+_prod",
        r"t\d+_.*",
        "(ab|a)+$",
        "(a?)+",
        "(?:ab)+",
        r"a{2,5}\.b*",
        r"^orders_\d{4}_\d{2}$",
        "x{1}+",
        "(?:a|b)+",
        r"(\w|_)+$",
        "(A|a)+$",
        "(orders|sales)_.*",
        "(shop|billing)_(eu|us)",
        "(?:[a-z]+_)?prod",
        "(ab|cd)+",
        "(?:a(b|c))+",
        "(a|)+",
        r"^(?:(?!tmp_)\w)+$",
    ],
)
def test_ordinary_regexes_are_accepted(regex):
    from metadata_assets.source_config import Pattern

    assert Pattern(allow=[regex], deny=[regex]).allow == [regex]


def test_pattern_matcher_is_built_once_and_names_are_memoized(monkeypatch):
    """The sensor's tick tests thousands of names: each distinct name runs the regexes once per Pattern."""
    import copy
    import pickle

    from datahub.configuration.common import AllowDenyPattern

    from metadata_assets.source_config import Pattern

    built, matched = [], []
    real_init, real_allowed = AllowDenyPattern.__init__, AllowDenyPattern.allowed
    monkeypatch.setattr(AllowDenyPattern, "__init__", lambda self, **kw: built.append(kw) or real_init(self, **kw))
    monkeypatch.setattr(AllowDenyPattern, "allowed", lambda self, s: matched.append(s) or real_allowed(self, s))

    p = Pattern(allow=["shop_.*", "Orders_.*"], deny=["orders_tmp.*"])
    names = [f"orders_{i}" for i in range(3000)] + ["orders_tmp_1", "shop_x", "other"]
    answers = [[p.allowed(n) for n in names] for _tick in range(3)]
    assert answers[0] == answers[1] == answers[2]
    assert answers[0][-3:] == [False, True, False] and all(answers[0][:3000])
    assert len(built) == 1 and matched == names  # one AllowDenyPattern; each name matched once

    # still a plain frozen config model: equal to a fresh one, same dump and repr, copies and pickles
    fresh = Pattern(allow=["shop_.*", "Orders_.*"], deny=["orders_tmp.*"])
    assert p == fresh and fresh == p and p.model_dump() == fresh.model_dump() and repr(p) == repr(fresh)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error, whatever its class
        p.allow = [".*"]
    changed = p.model_copy(update={"deny": ["shop_.*"]})
    assert not changed.allowed("shop_x") and p.allowed("shop_x")
    assert copy.deepcopy(p).allowed("orders_1") and pickle.loads(pickle.dumps(p)).allowed("orders_1")
    assert not pickle.loads(pickle.dumps(p)).allowed("orders_tmp_1")


def test_memoized_patterns_keep_datahub_semantics():
    from datahub.configuration.common import AllowDenyPattern

    from metadata_assets.source_config import Pattern

    for allow, deny, ignore_case in (
        (["Orders_.*", "x"], ["orders_tmp"], True),
        (["Orders_.*"], [], False),
        ([".*"], ["^db$", "tmp"], True),
        (["^(shop|billing)$"], [], True),
    ):
        ours = Pattern(allow=allow, deny=deny, ignoreCase=ignore_case)
        theirs = AllowDenyPattern(allow=allow, deny=deny, ignoreCase=ignore_case)
        for name in (
            "orders_eu",
            "ORDERS_EU",
            "Orders_eu",
            "x",
            "xy",
            "orders_tmp",
            "orders_tmp2",
            "db",
            "dbx",
            "shop",
            "billing",
            "shop2",
            "tmp_x",
            "a_orders_eu",
        ):
            for _ in range(2):  # first answer computed, second memoized
                assert ours.allowed(name) == theirs.allowed(name), (allow, deny, ignore_case, name)


# --- issue 29: every config error at load, naming file, source and field ---


def load_error(tmp_path, text) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load(path)
    assert str(e.value).startswith(f"{path}: ")
    return str(e.value)[len(f"{path}: ") :]


@pytest.mark.parametrize(
    "cron, why",
    [
        ("99 99 * * *", "invalid cron expression '99 99 * * *' (want 5 fields"),
        ("0 5 * *", "invalid cron expression '0 5 * *' (want 5 fields"),
        ("0 0 5 * * *", "invalid cron expression '0 0 5 * * *' (want 5 fields"),  # seconds: Dagster takes 5 fields
        ("0 5 31 2 *", "cron expression '0 5 31 2 *' never fires: February has no day 31"),
        ("0 25 * * *", "invalid cron expression '0 25 * * *'"),
        ("every day", "invalid cron expression 'every day'"),
    ],
)
def test_invalid_cron_is_refused_at_load(tmp_path, cron, why):
    msg = load_error(tmp_path, GOOD + f"    schedule: {{cron: '{cron}'}}\n")
    assert msg.startswith(f"source 'prod_orders', field schedule.cron: {why}"), msg


@pytest.mark.parametrize(
    "cron", ["0 5 * * *", "*/15 * * * *", "0 5 * * MON-FRI", "0 5 L * *", "@daily", "0 5 1,15 * *", "30 4 * * 1-5"]
)
def test_valid_cron_loads(tmp_path, cron):
    assert load(write(tmp_path, GOOD + f"    schedule: {{cron: '{cron}'}}\n")).sources[0].schedule.cron == cron


def test_cron_check_agrees_with_dagsters_own():
    """The core checks with croniter (no Dagster import there); Dagster's ScheduleDefinition is the judge."""
    from dagster._utils.schedules import is_valid_cron_string

    from metadata_assets.source_config import Schedule

    for cron in (
        "0 5 * * *",
        "99 99 * * *",
        "0 5 * *",
        "0 0 5 * * *",
        "0 5 30 2 *",
        "0 5 29 2 *",
        "@hourly",
        "@daily",
        "*/7 * * * *",
        "0 5 * * 1#2",
        "0 5 ? * *",
        "H 5 * * *",
        "0 5 * * 8",
        "0 5 * * 7",
        "0-59/5 0-23 1-31 1-12 0-6",
        "0 5 * * sun",
        "0 5 * jan-mar *",
        "0 5 0 * *",
        "60 * * * *",
        "",
    ):
        try:
            Schedule(cron=cron)
            ours = True
        except ValueError:
            ours = False
        assert ours == is_valid_cron_string(cron), cron


def test_missing_or_unknown_type_lists_the_registered_types(tmp_path):
    from metadata_assets.sources.registry import source_types

    supported = ", ".join(map(repr, source_types()))
    assert set(source_types()) >= {"mysql", "postgres", "bigquery"}
    assert load_error(tmp_path, GOOD.replace("    type: mysql\n", "")) == (
        f"source 'prod_orders', field type: no type given (supported: {supported})"
    )
    assert load_error(tmp_path, GOOD.replace("type: mysql", "type: oracle")) == (
        f"source 'prod_orders', field type: unknown source type 'oracle' (supported: {supported})"
    )


REST = "datahub:\n  target: rest\n  rest: {server_env: T29_GMS_URL, token_env: T29_GMS_TOKEN}\n"


def test_rest_target_variables_are_checked_at_load(tmp_path, monkeypatch):
    for var in ("T29_GMS_URL", "T29_GMS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    assert load_error(tmp_path, GOOD + REST) == (
        "field datahub.rest.server_env: environment variable T29_GMS_URL is not set (datahub.target is rest: it "
        "holds GMS's URL, e.g. http://datahub-gms:8080)"
    )
    monkeypatch.setenv("T29_GMS_URL", "datahub-gms:8080")
    assert load_error(tmp_path, GOOD + REST) == (
        "field datahub.rest.server_env: environment variable T29_GMS_URL is 'datahub-gms:8080', not an http(s) URL "
        "(e.g. http://datahub-gms:8080)"
    )
    monkeypatch.setenv("T29_GMS_URL", "http://datahub-gms:8080")
    assert load_error(tmp_path, GOOD + REST) == (
        "field datahub.rest.token_env: environment variable T29_GMS_TOKEN is not set (datahub.target is rest: it "
        "holds the DataHub access token; set token_env: null for a GMS without authentication)"
    )
    monkeypatch.setenv("T29_GMS_TOKEN", "secret")
    assert load(write(tmp_path, GOOD + REST)).datahub.rest.server_env == "T29_GMS_URL"
    monkeypatch.delenv("T29_GMS_TOKEN")
    assert load(write(tmp_path, GOOD + REST.replace("T29_GMS_TOKEN", "null"))).datahub.rest.token_env is None
    # a lite target needs neither, and the source's password is not read at load (issue 26: secrets at run time)
    monkeypatch.delenv("T29_GMS_URL")
    monkeypatch.delenv("ORDERS_PW", raising=False)
    assert load(write(tmp_path, GOOD + REST.replace("target: rest", "target: lite"))).datahub.target == "lite"


@pytest.mark.parametrize(
    "uri, why",
    [
        ("gs://", "'gs://' names no valid bucket (want gs://bucket/prefix"),
        ("gs:///mce", "'gs:///mce' names no valid bucket"),
        ("gs://Acme/mce", "'gs://Acme/mce' names no valid bucket"),
        ("gs://a/mce", "'gs://a/mce' names no valid bucket"),
        ("s3://acme/mce", "'s3://acme/mce': s3:// is not supported (a local directory or gs://bucket/prefix)"),
        ("", "empty: give a local directory or gs://bucket/prefix"),
    ],
)
def test_storage_uri_is_checked_at_load(tmp_path, uri, why):
    assert load_error(tmp_path, GOOD + f"storage: {{uri: '{uri}'}}\n").startswith(f"field storage.uri: {why}")


def test_good_storage_uris_load(tmp_path):
    for uri in ("gs://acme-metadata/mce", "gs://acme_metadata", "gs://acme.example.com/x/y", str(tmp_path / "m")):
        assert load(write(tmp_path, GOOD + f"storage: {{uri: '{uri}'}}\n")).storage.uri == uri


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            "    batch_size: true\n",
            "source 'prod_orders', field batch_size: Input should be a valid integer (got True, a boolean)",
        ),
        (
            "datahub:\n  rest: {batch_size: true}\n",
            "field datahub.rest.batch_size: Input should be a valid integer (got True, a boolean)",
        ),
        ("    port: '3306'\n", "source 'prod_orders', field port: Input should be a valid integer (got '3306')"),
        ("    port: 3306.0\n", "source 'prod_orders', field port: Input should be a valid integer (got 3306.0)"),
        (
            "    include_views: 'yes'\n",
            "source 'prod_orders', field include_views: Input should be a valid boolean, true or false (got 'yes')",
        ),
        (
            "    include_views: 1\n",
            "source 'prod_orders', field include_views: Input should be a valid boolean, true or false (got 1)",
        ),
        (
            "    connect_timeout_s: false\n",
            "source 'prod_orders', field connect_timeout_s: Input should be a valid number (got False, a boolean)",
        ),
        (
            "    profile: {min_rows: true}\n",
            "source 'prod_orders', field profile.min_rows: Input should be a valid integer (got True, a boolean)",
        ),
        (
            "    freshness_hours: true\n",
            "source 'prod_orders', field freshness_hours: Input should be a valid number (got True, a boolean)",
        ),
        (
            "datahub: {push_from_extraction: 0}\n",
            "field datahub.push_from_extraction: Input should be a valid boolean, true or false (got 0)",
        ),
    ],
)
def test_booleans_and_numbers_are_strict(tmp_path, extra, expected):
    assert load_error(tmp_path, GOOD + extra) == expected


def test_numbers_and_booleans_from_environment_variables(tmp_path, monkeypatch):
    text = (
        GOOD + "    port: ${T29_PORT:-3307}\n    include_views: ${T29_VIEWS:-false}\n"
        "    connect_timeout_s: ${T29_CT:-2.5}\n"
    )
    s = load(write(tmp_path, text)).sources[0]
    assert (s.port, s.include_views, s.connect_timeout_s) == (3307, False, 2.5)
    monkeypatch.setenv("T29_PORT", "abc")
    assert load_error(tmp_path, text) == (
        "source 'prod_orders', field port: the environment variable gave 'abc', not a whole number"
    )
    monkeypatch.setenv("T29_PORT", "3308")
    monkeypatch.setenv("T29_VIEWS", "yes")
    assert load_error(tmp_path, text) == (
        "source 'prod_orders', field include_views: the environment variable gave 'yes', not true or false"
    )
    monkeypatch.setenv("T29_VIEWS", "TRUE")
    s = load(write(tmp_path, text)).sources[0]
    assert (s.port, s.include_views) == (3308, True)


def test_demo_config_loads_without_any_secret(monkeypatch):
    """The demo config (lite target) loads with no password and no DataHub variable set: dg check defs works."""
    from metadata_assets.config import DEMO_CONFIG

    for var in ("DEMO_MYSQL_PASSWORD", "DATAHUB_GMS_URL", "DATAHUB_GMS_TOKEN", "DEMO_MYSQL_PORT"):
        monkeypatch.delenv(var, raising=False)
    cfg = load(DEMO_CONFIG)
    assert cfg.sources and cfg.datahub.target == "lite" and cfg.sources[0].port == 3306


@pytest.mark.parametrize(
    "regex",
    [
        "(a|a)+$",
        "(a|aa)+",
        "(a?a?)+$",
        "(a|b|ab)+$",
        "(?:a|.)+$",
        "(a?a)+$",
        "(b?a?)+",
        "((a|a))+",
        "(?:x(a|a))*y",
        "(a|a){2,}",
    ],
)
@pytest.mark.parametrize("which", ["allow", "deny"])
def test_ambiguous_choices_under_a_repeat_are_refused(tmp_path, regex, which):
    """Measured with re.match(rx, 'a' * n + '!'): (a|a)+$ 1.2 s at 24 characters, 18 s at 28; (a?a?)+$ 12 s at
    20; (a|aa)+$ x8 every 4 characters. Database names reach 64."""
    pattern = f"{{{which}: ['{regex}']}}"
    msg = load_error(tmp_path, GOOD.replace('{allow: ["orders_.*"], deny: ["orders_tmp"]}', pattern))
    assert msg == (
        f"source 'prod_orders', field database_pattern.{which}: regex {regex!r} repeats a choice whose "
        "alternatives can start with the same character (like '(a|a)+' or '(a|aa)+'), which can take "
        "exponential time on some names: make the alternatives start differently or drop the repeat (e.g. 'a+$' "
        "instead of '(a|aa)+$')"
    )


PG = """
sources:
  - name: wh
    type: postgres
    host: pg.internal
    user: catalog
    password_env: WH_PW
"""


@pytest.mark.parametrize(
    "base, extra, expected",
    [
        (
            GOOD,
            "    tls: {ca: /ca.pem, mode: preferred}\n",
            "source 'prod_orders', field tls: ca is set but mode is preferred: a certificate is only checked (or sent) on "
            "a connection that requires TLS (mode: required, or leave mode out)",
        ),
        (
            GOOD,
            "    tls: {cert: /c.pem, mode: disabled}\n",
            "source 'prod_orders', field tls: cert is set but mode is disabled",
        ),
        (
            GOOD,
            "    tls: {key: /k.pem}\n",
            "source 'prod_orders', field tls: key without cert: give the client certificate",
        ),
        (
            GOOD,
            "    tls: {mode: required, verify_identity: true}\n",
            "source 'prod_orders', field tls: verify_identity "
            "without ca: the host name is checked on a "
            "certificate checked against a CA, give it as ca",
        ),
        (
            GOOD,
            "    tls: {mode: verify}\n",
            "source 'prod_orders', field tls.mode: Input should be 'disabled', 'preferred' or 'required'",
        ),
        (
            GOOD,
            "    tls: {ca: /ca.pem, verify_identity: 'no'}\n",
            "source 'prod_orders', field tls.verify_identity: Input should be a valid boolean",
        ),
        (GOOD, "    tls: {sslmode: require}\n", "source 'prod_orders', field tls.sslmode: unknown key"),
        (
            PG,
            "    sslmode: verify-full\n",
            "source 'wh', field sslrootcert: sslmode verify-full needs sslrootcert: the CA "
            "file that signed the server's certificate (or 'system' for the system's CAs)",
        ),
        (PG, "    sslmode: verify-ca\n", "source 'wh', field sslrootcert: sslmode verify-ca needs sslrootcert"),
        (PG, "    sslcert: /c.pem\n", "source 'wh', field sslkey: sslcert and sslkey go together"),
        (PG, "    sslkey: /k.pem\n", "source 'wh', field sslkey: sslcert and sslkey go together"),
        (
            PG,
            "    sslmode: disable\n    sslrootcert: /ca.pem\n",
            "source 'wh', field sslrootcert: set with sslmode disable",
        ),
        (PG, "    sslmode: verify_full\n", "source 'wh', field sslmode: Input should be 'disable'"),
    ],
)
def test_tls_settings_that_cannot_work_are_refused_at_load(tmp_path, base, extra, expected):
    msg = load_error(tmp_path, base + extra)
    assert msg.startswith(expected), msg


def test_tls_defaults_and_modes(tmp_path):
    mysql = load(write(tmp_path, GOOD)).sources[0]
    assert (mysql.tls.effective_mode, mysql.tls.ca) == ("preferred", None)
    assert mysql.tls.describe() == "TLS when the server offers it, certificate not checked (tls.mode: preferred)"
    tls = load(write(tmp_path, GOOD + "    tls: {ca: /etc/db-ca/ca.pem}\n")).sources[0].tls
    assert (tls.effective_mode, tls.checks_host_name) == ("required", True)
    assert tls.describe() == "TLS required, certificate checked against tls.ca and its host name"
    tls = load(write(tmp_path, GOOD + "    tls: {mode: required}\n")).sources[0].tls
    assert tls.describe() == "TLS required, certificate not checked (no tls.ca)"
    pg = load(write(tmp_path, PG)).sources[0]
    assert (pg.sslmode, pg.sslrootcert, pg.sslcert, pg.sslkey) == ("prefer", None, None, None)
    # what run pods do: the source as JSON (defs/resources.py) and back
    from metadata_assets.sources.registry import config_model

    for text in (
        GOOD,
        GOOD + "    tls: {ca: /ca.pem, verify_identity: false, cert: /c.pem, key: /k.pem}\n",
        PG + "    sslmode: verify-full\n    sslrootcert: /ca.pem\n    sslcert: /c.pem\n    sslkey: /k.pem\n",
    ):
        s = load(write(tmp_path, text)).sources[0]
        assert config_model(s.type).model_validate_json(s.model_dump_json()) == s
    pg = load(write(tmp_path, PG + "    sslmode: verify-full\n    sslrootcert: system\n")).sources[0]
    assert pg.tls_description() == "TLS required, certificate and host name checked (sslmode verify-full)"


def test_commands_that_never_talk_to_datahub_need_no_rest_variables(tmp_path, monkeypatch, capsys):
    """grants and check-access read the sources only: a deployed config (target rest) works on a laptop without
    DataHub's variables; definitions loading (and every other command) checks them."""
    from metadata_assets import cli

    for var in ("T29_GMS_URL", "T29_GMS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    path = write(tmp_path, GOOD + REST)
    assert cli.main(["grants", "--config", str(path), "-d", "orders_eu"]) == 0
    assert "GRANT REFERENCES, SHOW VIEW ON `orders_eu`.* TO 'catalog_reader'@'%';" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="environment variable T29_GMS_URL is not set"):
        load(path)
