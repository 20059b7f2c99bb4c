"""What a Dagster and DataHub user expects of the assets' definitions: owners, tags, a freshness policy (on the push),
a code version, a description that does not change when the server moves, and owners sent to DataHub when asked;
bad owners, tags and domains refused at load with a clear error."""

from datetime import timedelta

import pytest
import yaml

from metadata_assets import config as config_mod
from metadata_assets.datahub.mce_json import read_mcps
from metadata_assets.definitions import build_definitions
from metadata_assets.defs.keys import mce_asset_key, push_asset_key
from metadata_assets.extract import extract
from metadata_assets.sources.mysql.emitter import MCE_FORMAT
from metadata_assets.storage.layout import mce_key
from metadata_assets.storage.store import LocalStore


def test_owners_tags_freshness_and_code_version_on_the_asset(schema, tmp_path):
    schema.create("own", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()
    cfg = schema.project(
        tmp_path, owners=["team:data-platform", "alice@example.com"], tags={"tier": "gold"}, freshness_hours=30
    )
    source = cfg.sources[0]
    key = mce_asset_key(source)
    spec = next(s for s in build_definitions(cfg).resolve_assets_def(key).specs if s.key == key)
    assert spec.owners == ["team:data-platform", "alice@example.com"]
    assert spec.tags["tier"] == "gold"
    assert spec.code_version == MCE_FORMAT
    # freshness belongs to the push (DataHub in sync): an unchanged database is observed, not materialized
    assert spec.freshness_policy is None
    push_key = push_asset_key(source)
    push_spec = next(s for s in build_definitions(cfg).resolve_assets_def(push_key).specs if s.key == push_key)
    assert push_spec.freshness_policy.fail_window.to_timedelta() == timedelta(hours=30)
    assert str(schema.server.port) not in spec.description and "`src`" in spec.description

    default = schema.project(tmp_path).sources[0]
    spec = next(
        s for s in build_definitions(schema.project(tmp_path)).resolve_assets_def(push_key).specs if s.key == push_key
    )
    assert default.freshness_hours == 26 and spec.freshness_policy.fail_window.to_timedelta() == timedelta(hours=26)


def test_owners_go_to_datahub_only_when_asked(schema, tmp_path):
    db = schema.create("dho", "CREATE TABLE t (id INT PRIMARY KEY)")
    schema.grant()

    def ownership(**overrides):
        store = LocalStore(tmp_path / str(len(list(tmp_path.iterdir()))))
        (r,) = extract(schema.source(owners=["team:data-platform", "alice@example.com"], **overrides), [db], store)
        assert r.ok
        return {
            m.entityUrn.split(":")[2]: m.aspect
            for m in read_mcps(store.read_bytes(mce_key("src", db)))
            if m.aspectName == "ownership"
        }

    assert ownership() == {}
    got = ownership(datahub_ownership=True)
    assert set(got) == {"container", "dataset"}
    assert [(o.owner, o.type) for o in got["dataset"].owners] == [
        ("urn:li:corpGroup:data-platform", "TECHNICAL_OWNER"),
        ("urn:li:corpuser:alice@example.com", "TECHNICAL_OWNER"),
    ]


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("owners", ["Data Platform"], "give an e-mail address or team:<name>"),
        ("tags", {"tier": "gold standard"}, "keys and values may hold letters"),
        ("domain", {"Sales": {"allow": [".*"]}}, "is not a domain URN"),
    ],
)
def test_bad_owner_tag_or_domain_is_a_clear_load_error(tmp_path, field, value, message):
    path = tmp_path / "sources.yaml"
    path.write_text(
        yaml.safe_dump(
            {"sources": [{"name": "s", "type": "mysql", "host": "db", "user": "u", "password_env": "PW", field: value}]}
        )
    )
    with pytest.raises(config_mod.ConfigError, match=message) as e:
        config_mod.load(path)
    assert "s" in str(e.value) and field in str(e.value)
