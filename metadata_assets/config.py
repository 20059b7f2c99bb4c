"""The project's YAML configuration: sources, where MCE files live, which DataHub receives them.

Loaded once when definitions load. Every problem becomes one `ConfigError` that names the file, the source and
the field, never a traceback from deep inside.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from datahub.configuration.common import AllowDenyPattern
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

try:  # Python 3.11+
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse as _sre_parse  # type: ignore[no-redef]

CONFIG_ENV = "METADATA_ASSETS_CONFIG"
HOME_ENV = "METADATA_ASSETS_HOME"
DEMO_CONFIG = Path(__file__).parent / "demo" / "sources.yaml"

# Never catalogued, whatever the patterns say.
SYSTEM_DATABASES = frozenset({"information_schema", "mysql", "performance_schema", "sys"})


def home() -> str:
    return os.environ.get(HOME_ENV) or os.path.abspath(".metadata_assets")


class ConfigError(ValueError):
    """A configuration problem, worded for the person who edits the YAML."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


_REPEATS = frozenset(op for op in (getattr(_sre_parse, n, None) for n in ("MAX_REPEAT", "MIN_REPEAT",
                                                                           "POSSESSIVE_REPEAT")) if op is not None)


def _subpatterns(av):
    """The parsed sub-patterns held in one node's argument (groups, branches, lookarounds, conditionals)."""
    if isinstance(av, _sre_parse.SubPattern):
        yield av
    elif isinstance(av, (tuple, list)):
        for x in av:
            yield from _subpatterns(x)


def _nests_repeats(items, inside_repeat: bool = False) -> bool:
    """Whether a parsed regex has a repeat whose max is above 1 inside another such repeat, directly or through
    groups and alternations: `(a+)+`, `(a*)*`, `(\\w+\\s?)+`. Those can backtrack exponentially on a name that
    almost matches."""
    for op, av in items:
        if op in _REPEATS:
            _, hi, sub = av
            if hi > 1 and inside_repeat:
                return True
            if _nests_repeats(sub, inside_repeat or hi > 1):
                return True
            continue
        if any(_nests_repeats(sub, inside_repeat) for sub in _subpatterns(av)):
            return True
    return False


# Answers memoized per Pattern and name: a sensor tick tests every database (and "database.table") name against
# the same patterns, so each distinct name runs the regexes once, not once per tick.
_MEMO_NAMES = 100_000
_MATCHER = "_Pattern__matcher"  # key in the instance __dict__, not a field: equality, dumps and repr ignore it


class _Matcher:
    """A Pattern's AllowDenyPattern, built once, with its answers memoized per name (bounded LRU, thread-safe)."""

    __slots__ = ("allow", "deny", "ignore_case", "allowed")

    def __init__(self, p: "Pattern"):
        self.allow, self.deny, self.ignore_case = p.allow, p.deny, p.ignoreCase
        self.allowed = functools.lru_cache(maxsize=_MEMO_NAMES)(p.to_datahub().allowed)

    def built_from(self, p: "Pattern") -> bool:
        # identity, not equality: model_copy(update=...) and deepcopy carry this object over to other values
        return self.allow is p.allow and self.deny is p.deny and self.ignore_case is p.ignoreCase


class Pattern(_Strict):
    """Allow/deny regexes with exactly DataHub's AllowDenyPattern semantics (deny wins; each regex matched from the
    start of the name, `re.match`; ignoreCase by default)."""

    allow: list[str] = Field(default_factory=lambda: [".*"])
    deny: list[str] = Field(default_factory=list)
    ignoreCase: bool = True

    @field_validator("allow", "deny")
    @classmethod
    def _compiles(cls, regexes: list[str]) -> list[str]:
        for rx in regexes:
            try:
                parsed = _sre_parse.parse(rx)
                re.compile(rx)
            except re.error as e:
                raise ValueError(f"invalid regex {rx!r}: {e}") from None
            if _nests_repeats(parsed):
                raise ValueError(
                    f"regex {rx!r} nests a repeat inside a repeat (like '(a+)+'), which can take exponential time "
                    "on some names: rewrite it without the nested repeat (e.g. 'a+$' instead of '(a+)+$')")
        return regexes

    def to_datahub(self) -> AllowDenyPattern:
        return AllowDenyPattern(allow=self.allow, deny=self.deny, ignoreCase=self.ignoreCase)

    def _matcher(self) -> _Matcher:
        m = self.__dict__.get(_MATCHER)
        if m is None or not m.built_from(self):
            # stored the way functools.cached_property stores on a frozen model: straight into __dict__
            m = self.__dict__[_MATCHER] = _Matcher(self)
        return m

    def allowed(self, name: str) -> bool:
        return self._matcher().allowed(name)

    def __getstate__(self):  # pickles without the cache (an lru_cache does not pickle)
        state = super().__getstate__()
        state["__dict__"] = {k: v for k, v in state["__dict__"].items() if k != _MATCHER}
        return state


class Schedule(_Strict):
    cron: str = "0 5 * * *"
    timezone: str = "UTC"


    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        fields = cron.split()
        if len(fields) != 5 or not all(re.fullmatch(r"[0-9A-Za-z*/,\-]+", f) for f in fields):
            raise ValueError(f"invalid cron expression {cron!r} (want 5 fields, e.g. '0 5 * * *')")
        return cron

    @field_validator("timezone")
    @classmethod
    def _valid_tz(cls, tz: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {tz!r}") from None
        return tz


class RunPod(_Strict):
    """What an extraction run's pod asks Kubernetes for (request = limit for memory). 512Mi holds a batch of 200
    ordinary databases with headroom; a run extracting one database of 10,000 tables peaks at 504 MiB, and at
    808 MiB when it also pushes it (push_from_extraction; bench/, size W): give such a source 1Gi."""

    cpu: str = Field(default="250m", pattern=r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$",
                     description="a Kubernetes CPU quantity: 250m, 1, 1.5")
    memory: str = Field(default="512Mi", pattern=r"^[0-9]+(Mi|Gi)$",
                        description="a Kubernetes memory quantity in Mi or Gi: 512Mi, 2Gi")

class MySQLSource(_Strict):
    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Dagster-safe identifier")
    type: Literal["mysql"]
    host: str
    port: int = Field(default=3306, ge=1, le=65535)
    user: str
    password_env: str = Field(description="name of the environment variable holding the password")
    database_pattern: Pattern = Pattern()
    table_pattern: Pattern = Field(default=Pattern(), description='matched against "database.table"')
    include_views: bool = True
    env: str = "PROD"
    platform_instance: Optional[str] = None
    connect_timeout_s: float = Field(default=10, gt=0, le=3600)
    query_timeout_s: float = Field(
        default=300, gt=0, le=86400,
        description="longest wait for one information_schema query or SHOW CREATE; also bounds a sensor tick's "
                    "fingerprint query",
    )
    batch_size: int = Field(default=200, ge=1, le=1000,
                            description="databases per run (and per bulk query) in the schedule; at most 1000 (a "
                                        "UNION ALL of 1000 branches is already large)")
    max_concurrent_runs: int = Field(default=2, ge=1, le=64, description="extraction runs against this host at once")
    sensor_interval_s: int = Field(
        default=15, ge=5, le=86400,
        description="seconds between the schema sensor's fingerprint queries; a tick whose query took longer than "
                    "a tenth of this stretches the interval to 10x that cost, so a large server is not kept busy",
    )
    schedule: Schedule = Schedule()
    coverage_threshold: float = Field(default=0.5, ge=0, le=1)
    run_pod: RunPod = RunPod()

    @field_validator("env")
    @classmethod
    def _known_env(cls, env: str) -> str:
        from datahub.configuration.source_common import ALL_ENV_TYPES

        if env.upper() not in ALL_ENV_TYPES:
            raise ValueError(f"unknown env {env!r}; DataHub knows {sorted(ALL_ENV_TYPES)}")
        return env.upper()

    def password(self) -> str:
        try:
            return os.environ[self.password_env]
        except KeyError:
            raise ConfigError(
                f"source {self.name!r}: environment variable {self.password_env} (password_env) is not set"
            ) from None

    def database_allowed(self, database: str) -> bool:
        return database.lower() not in SYSTEM_DATABASES and self.database_pattern.allowed(database)

    def table_allowed(self, database: str, table: str) -> bool:
        return self.table_pattern.allowed(f"{database}.{table}")


class BigQuerySource(_Strict):
    """A BigQuery project read through INFORMATION_SCHEMA only; one partition per allowed dataset.

    Credentials come from the environment (Application Default Credentials: GOOGLE_APPLICATION_CREDENTIALS, workload
    identity, gcloud auth), never from this file. Query jobs run in (and are billed to) `project`.
    """

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Dagster-safe identifier")
    type: Literal["bigquery"]
    project: str = Field(description="GCP project id (also the project query jobs run in)")
    regions: Optional[list[str]] = Field(
        default=None,
        description="e.g. [us, eu]: list and read datasets with region-qualified INFORMATION_SCHEMA views (a fixed "
                    "number of queries per batch; needs the grant on the project). Unset: datasets are listed with the "
                    "API and read per dataset (project.dataset.INFORMATION_SCHEMA)",
    )
    dataset_pattern: Pattern = Pattern()
    table_pattern: Pattern = Field(default=Pattern(), description='matched against "dataset.table"')
    include_views: bool = True
    env: str = "PROD"
    platform_instance: Optional[str] = None
    batch_size: int = Field(default=50, ge=1, le=1000,
                            description="datasets per run (and per bulk query) in the schedule")
    max_concurrent_runs: int = Field(default=2, ge=1, le=64,
                                     description="extraction runs against this project at once")
    sensor_interval_s: int = Field(default=60, ge=5, le=86400,
                                   description="seconds between the schema sensor's fingerprint queries (each tick "
                                               "runs query jobs, billed to the project)")
    schedule: Schedule = Schedule()
    coverage_threshold: float = Field(default=0.5, ge=0, le=1)
    run_pod: RunPod = RunPod()

    _known_env = field_validator("env")(MySQLSource._known_env.__func__)

    @field_validator("project")
    @classmethod
    def _valid_project(cls, project: str) -> str:
        if not re.fullmatch(r"(?:[a-z0-9.\-]+:)?[a-z][a-z0-9\-]{4,61}[a-z0-9]", project):
            raise ValueError(f"invalid project id {project!r} (want the GCP project id, e.g. 'acme-analytics', "
                             "not its display name or number)")
        return project

    @field_validator("regions")
    @classmethod
    def _valid_regions(cls, regions: Optional[list[str]]) -> Optional[list[str]]:
        if regions is None:
            return None
        if not regions:
            raise ValueError("regions is empty: leave it out to read per dataset, or list regions such as [us, eu]")
        out = []
        for r in regions:
            r = r.lower().removeprefix("region-")
            if not re.fullmatch(r"[a-z]+[a-z0-9-]*[a-z0-9]", r):
                raise ValueError(f"invalid region {r!r} (want a BigQuery location such as 'us', 'eu', 'europe-west3')")
            out.append(r)
        return sorted(set(out), key=out.index)

    def database_allowed(self, dataset: str) -> bool:
        return self.dataset_pattern.allowed(dataset)

    def table_allowed(self, dataset: str, table: str) -> bool:
        return self.table_pattern.allowed(f"{dataset}.{table}")


Source = Annotated[Union[MySQLSource, BigQuerySource], Field(discriminator="type")]
AnySource = Union[MySQLSource, BigQuerySource]


class Storage(_Strict):
    """Where MCE files and push state live: a local directory or gs://bucket/prefix."""

    uri: str = Field(default_factory=lambda: str(Path(home(), "mce")))


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
    lite: LiteTarget = Field(default_factory=LiteTarget)
    rest: RestTarget = Field(default_factory=RestTarget)
    max_removal_share: float = Field(
        default=0.2, ge=0, le=1,
        description="a push refuses to soft-delete more than this share of a source's datasets",
    )
    push_deadline_s: float = Field(
        default=1800, gt=0, le=86400,
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
    push_sensor_interval_s: int = Field(default=30, ge=5, le=86400,
                                        description="seconds between the push sensor's ticks")


class ProjectConfig(_Strict):
    sources: list[Source] = Field(default_factory=list)
    storage: Storage = Field(default_factory=Storage)
    datahub: DataHubTarget = Field(default_factory=DataHubTarget)
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


def _expand(value, where: str):
    """`${VAR}` and `${VAR:-default}` in string values, so one file serves laptops and clusters."""
    if isinstance(value, dict):
        return {k: _expand(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str):
        def sub(m: re.Match) -> str:
            var, default = m.group(1), m.group(2)
            if var in os.environ:
                return os.environ[var]
            if default is not None:
                return default
            raise ConfigError(f"{where}: environment variable {var} is not set and has no default")
        return _VAR.sub(sub, value)
    return value


def _describe(loc: tuple, raw: dict) -> str:
    """Turn a pydantic location into 'source "x", field a.b'."""
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "sources" and isinstance(parts[1], int):
        idx = parts[1]
        srcs = raw.get("sources") or []
        name = srcs[idx].get("name") if idx < len(srcs) and isinstance(srcs[idx], dict) else None
        rest = [str(p) for p in parts[2:] if p not in ("mysql", "bigquery")]
        label = f'source {name!r}' if name else f"sources[{idx}]"
        return f"{label}, field {'.'.join(rest)}" if rest else label
    return "field " + ".".join(str(p) for p in parts)


_CREDENTIAL_KEYS = ("credentials", "gcp_credentials", "credentials_path", "key_file", "keyfile", "private_key",
                    "service_account", "password", "password_env")


_BOUNDS = ("greater_than", "greater_than_equal", "less_than", "less_than_equal")


def load(path: str | os.PathLike | None = None) -> ProjectConfig:
    """Load the config named by the argument, else $METADATA_ASSETS_CONFIG, else the demo config."""
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
    try:
        expanded = _expand(raw, "config")
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None
    try:
        cfg = ProjectConfig.model_validate({**expanded, "path": str(path)})
    except ValidationError as e:
        msgs = []
        for err in e.errors():
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] in ("union_tag_invalid", "union_tag_not_found"):
                ctx = err.get("ctx", {})
                msgs.append(f"{_describe(err['loc'], raw)}, field type: unknown source type "
                            f"{ctx.get('tag')!r} (supported: {ctx.get('expected_tags', 'mysql')})")
                continue
            if err["type"] == "extra_forbidden":
                msg = "unknown key" + (" (passwords are never inline: use password_env)" if err["loc"][-1] == "password" else "")
                if "bigquery" in err["loc"] and err["loc"][-1] in _CREDENTIAL_KEYS:
                    msg = ("unknown key (BigQuery credentials are never in this file: they come from the environment, "
                           "Application Default Credentials, e.g. GOOGLE_APPLICATION_CREDENTIALS or workload identity)")
            if err["type"] in _BOUNDS and "input" in err:
                msg += f" (got {err['input']!r})"
            msgs.append(f"{_describe(err['loc'], raw)}: {msg}")
        raise ConfigError(f"{path}: " + "; ".join(msgs)) from None
    return cfg


def check_secrets(cfg: ProjectConfig) -> None:
    """Fail at load time, not at 5 a.m., when a password variable is missing."""
    for s in cfg.sources:
        if not isinstance(s, MySQLSource):
            continue  # BigQuery: Application Default Credentials, resolved by the client when it connects
        try:
            s.password()
        except ConfigError as e:
            raise ConfigError(f"{cfg.path}: {e}") from None
