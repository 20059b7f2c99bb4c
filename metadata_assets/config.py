"""The project's YAML configuration: sources, where MCE files live, which DataHub receives them.

Loaded once when definitions load. Every problem becomes one `ConfigError` that names the file, the source and
the field, never a traceback from deep inside.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import Discriminator, Field, Tag, ValidationError, field_validator, model_validator

from metadata_assets.change_config import OwnerNotifications
from metadata_assets.source_config import ConfigError, SourceConfig
from metadata_assets.sources.registry import config_model, config_models, source_types
from metadata_assets.strict import FromEnv
from metadata_assets.strict import StrictModel as _Strict

CONFIG_ENV = "METADATA_ASSETS_CONFIG"
HOME_ENV = "METADATA_ASSETS_HOME"
DEMO_CONFIG = Path(__file__).parent / "demo" / "sources.yaml"


def home() -> str:
    return os.environ.get(HOME_ENV) or os.path.abspath(".metadata_assets")


def _source_type(value):
    return value.get("type") if isinstance(value, dict) else getattr(value, "type", None)


# a callable discriminator (not Field(discriminator="type")): pydantic refuses a before-validator on a discriminator
# field, and _Strict's strict scalars run before every field's own validation
Source = Annotated[
    Union[tuple(Annotated[m, Tag(t)] for t, m in zip(source_types(), config_models()))], Discriminator(_source_type)
]
AnySource = SourceConfig  # any source's model (sources/<type>/config.py)


class Storage(_Strict):
    """Where MCE files and push state live: a local directory or gs://bucket/prefix."""

    uri: str = Field(default_factory=lambda: str(Path(home(), "mce")))

    @field_validator("uri")
    @classmethod
    def _valid_uri(cls, uri: str) -> str:
        if not uri.strip():
            raise ValueError("empty: give a local directory or gs://bucket/prefix")
        if uri.startswith("gs://"):
            bucket = uri[len("gs://") :].split("/", 1)[0]
            # Cloud Storage's bucket names: 3-63 characters (dotted names up to 222), lower case, digits, - _ .
            if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]", bucket) or (
                "." not in bucket and len(bucket) > 63
            ):
                raise ValueError(
                    f"{uri!r} names no valid bucket (want gs://bucket/prefix, e.g. gs://acme-metadata/mce)"
                )
        elif m := re.match(r"([A-Za-z][A-Za-z0-9+.-]*)://", uri):
            raise ValueError(f"{uri!r}: {m.group(1)}:// is not supported (a local directory or gs://bucket/prefix)")
        return uri


class LiteTarget(_Strict):
    path: str = Field(default_factory=lambda: str(Path(home(), "datahub-lite.sqlite")))


class RestTarget(_Strict):
    server_env: str = "DATAHUB_GMS_URL"
    token_env: Optional[str] = "DATAHUB_GMS_TOKEN"
    timeout_s: float = Field(default=30, gt=0, le=3600)
    retries: int = Field(default=5, ge=0, le=20)
    batch_size: int = Field(default=100, ge=1, le=10000)


class DataHubTarget(_Strict):
    target: Literal["lite", "rest"] = "lite"
    ui_url: Optional[str] = Field(
        default=None, pattern=r"^https?://", description="DataHub's web UI, for links from Dagit to each dataset"
    )
    lite: LiteTarget = Field(default_factory=LiteTarget)
    rest: RestTarget = Field(default_factory=RestTarget)
    max_removal_share: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="a push refuses to soft-delete more than this share of a source's datasets",
    )
    push_deadline_s: float = Field(
        default=1800,
        gt=0,
        le=86400,
        description="a push stops sending after this long; what it did not send stays pending for the next push",
    )
    push_from_extraction: bool = Field(
        default=True,
        description="an extraction run pushes what it extracted at its end when the schema sensor started it for a "
        "few changed databases, or when the schedule or a sensor started it and no other extraction "
        "run of its source is queued or running (the last run of a daily refresh): no wait for the "
        "push sensor, no push run of its own; whatever stops that push leaves the files pending for "
        "the push sensor. Runs started by hand leave the push to the push sensor",
    )
    push_sensor_interval_s: int = Field(
        default=30, ge=5, le=86400, description="seconds between the push sensor's ticks"
    )


class ProjectConfig(_Strict):
    sources: list[Source] = Field(default_factory=list)
    storage: Storage = Field(default_factory=Storage)
    datahub: DataHubTarget = Field(default_factory=DataHubTarget)
    notifications: OwnerNotifications = Field(
        default_factory=OwnerNotifications, description="change-notification webhooks per owner"
    )
    path: Optional[str] = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> "ProjectConfig":
        seen: set[str] = set()
        for s in self.sources:
            if s.name in seen:
                raise ValueError(f"duplicate source name {s.name!r}")
            seen.add(s.name)
        return self

    def source(self, name: str) -> AnySource:
        for s in self.sources:
            if s.name == name:
                return s
        raise ConfigError(f"{self.path}: no source named {name!r} (have: {[s.name for s in self.sources]})")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _UnsetVariable(Exception):
    def __init__(self, loc: tuple, var: str):
        super().__init__(var)
        self.loc, self.var = loc, var


def _expand(value, loc: tuple = ()):
    """`${VAR}` and `${VAR:-default}` in string values, so one file serves laptops and clusters. A string that went
    through it is a FromEnv: the one kind of string a number or boolean field takes (`port: ${DB_PORT:-3306}`)."""
    if isinstance(value, dict):
        return {k: _expand(v, (*loc, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, (*loc, i)) for i, v in enumerate(value)]
    if isinstance(value, str) and _VAR.search(value):

        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise _UnsetVariable(loc, var)

        return FromEnv(_VAR.sub(sub, value))
    return value


def _describe(loc: tuple, raw: dict) -> str:
    """Turn a pydantic location into 'source "x", field a.b'."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "sources" and isinstance(parts[1], int):
        idx = parts[1]
        srcs = raw.get("sources") or []
        name = srcs[idx].get("name") if idx < len(srcs) and isinstance(srcs[idx], dict) else None
        if not isinstance(name, str) or _VAR.search(name):
            name = None
        rest = [str(p) for p in parts[2:] if p not in source_types()]
        label = f"source {name!r}" if name else f"sources[{idx}]"
        return f"{label}, field {'.'.join(rest)}" if rest else label
    if not parts:
        return "config"
    return "field " + ".".join(str(p) for p in parts)


def _duplicate_names(raw: dict) -> list[str]:
    """One error per source whose name an earlier source already has, naming both positions."""
    first: dict[str, int] = {}
    out = []
    srcs = raw.get("sources")
    for i, s in enumerate(srcs if isinstance(srcs, list) else []):
        name = s.get("name") if isinstance(s, dict) else None
        if not isinstance(name, str):
            continue
        if name in first:
            out.append(
                f"source {name!r}, field name: duplicate source name {name!r} (sources[{first[name]}] and "
                f"sources[{i}]): each source needs its own name"
            )
        else:
            first[name] = i
    return out


_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def load(path: str | os.PathLike | None = None, check_datahub: bool = True) -> ProjectConfig:
    """Load the config named by the argument, else $METADATA_ASSETS_CONFIG, else the demo config. check_datahub
    False: a command that never talks to DataHub (grants, check-access) does not need the REST target's variables."""
    path = Path(path or os.environ.get(CONFIG_ENV) or DEMO_CONFIG)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sources' list at the top")
    return parse(raw, str(path), path=str(path), check_datahub=check_datahub)


def parse(raw: dict, where: str, path: Optional[str] = None, check_datahub: bool = True) -> ProjectConfig:
    """A sources config already read (a YAML file's, a DataHubCatalog component's attributes): `${VAR}` expanded,
    validated, every error one ConfigError that starts with `where` and names the source and the field."""
    try:
        expanded = _expand(raw)
    except _UnsetVariable as e:
        raise ConfigError(
            f"{where}: {_describe(e.loc, raw)}: environment variable {e.var} is not set and has no default"
        ) from None
    if duplicates := _duplicate_names(expanded):
        raise ConfigError(f"{where}: " + "; ".join(duplicates))
    try:
        cfg = ProjectConfig.model_validate({**expanded, **({"path": path} if path else {})})
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                tag = err.get("ctx", {}).get("tag")
                what = "no type given" if err["type"] == "union_tag_not_found" else f"unknown source type {tag!r}"
                msgs.append(
                    f"{_describe(err['loc'], raw)}, field type: {what} (supported: "
                    f"{', '.join(map(repr, source_types()))})"
                )
                continue
            if err["type"] == "extra_forbidden":
                loc = err["loc"]
                model = (
                    config_model(loc[2])
                    if len(loc) > 3 and loc[0] == "sources" and loc[2] in source_types()
                    else SourceConfig
                )
                hint = model.unknown_key_hint(str(loc[-1]))
                msg = "unknown key" + (f" ({hint})" if hint else "")
            if err["type"] in _BOUNDS and "input" in err:
                msg += f" (got {err['input']!r})"
            msgs.append(f"{_describe(err['loc'], raw)}: {msg}")
        raise ConfigError(f"{where}: " + "; ".join(msgs)) from None
    try:
        if check_datahub:
            check_target(cfg.datahub)
    except ConfigError as e:
        raise ConfigError(f"{where}: {e}") from None
    return cfg


def check_target(target: DataHubTarget) -> None:
    """A REST target's server and token variables set, the server an http(s) URL: checked when the config loads,
    so a missing variable stops definitions loading with its name, not a push hours later. (Source passwords are
    read when a run or tick needs them.)"""
    if target.target != "rest":
        return
    rest = target.rest
    server = os.environ.get(rest.server_env, "")
    if not server:
        raise ConfigError(
            f"field datahub.rest.server_env: environment variable {rest.server_env} is not set "
            "(datahub.target is rest: it holds GMS's URL, e.g. http://datahub-gms:8080)"
        )
    if not re.match(r"https?://[^/\s]+", server):
        raise ConfigError(
            f"field datahub.rest.server_env: environment variable {rest.server_env} is {server!r}, "
            "not an http(s) URL (e.g. http://datahub-gms:8080)"
        )
    if rest.token_env and not os.environ.get(rest.token_env):
        raise ConfigError(
            f"field datahub.rest.token_env: environment variable {rest.token_env} is not set "
            "(datahub.target is rest: it holds the DataHub access token; set token_env: null for a "
            "GMS without authentication)"
        )


def check_secrets(cfg: ProjectConfig) -> None:
    """Every source's password variable set, or a ConfigError naming it: for a check before a deployment
    (tests/test_deploy.py runs it against the chart's Secrets). The definitions do not call it: a run or tick reads
    its password when it needs it."""
    for s in cfg.sources:
        try:
            s.check_secrets()
        except ConfigError as e:
            raise ConfigError(f"{cfg.path}: {e}") from None
