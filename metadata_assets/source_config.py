"""What every source's configuration shares: the error type, allow/deny patterns, the schedule, the run pod, and
the common fields of a source (`SourceConfig`) and of a source that logs in to a server (`ServerSource`).

A source's own model (sources/<type>/config.py) subclasses one of these; config.py gathers them through the
registry into the `sources:` list. No Dagster, no SQL here.
"""

from __future__ import annotations

import functools
import os
import re
from typing import ClassVar, Optional

from datahub.configuration.common import AllowDenyPattern
from pydantic import Field, field_validator

from metadata_assets.change_config import History, Notifications, Risk
from metadata_assets.strict import StrictModel as _Strict

try:  # Python 3.11+
    from re import _parser as _sre_parse
except ImportError:  # pragma: no cover - older Pythons
    import sre_parse as _sre_parse  # type: ignore[no-redef]


class ConfigError(ValueError):
    """A configuration problem, worded for the person who edits the YAML."""

    __module__ = "metadata_assets.config"  # where users import it from (tracebacks name it so)


_REPEATS = frozenset(
    op
    for op in (getattr(_sre_parse, n, None) for n in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"))
    if op is not None
)


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


# --- choices inside a repeat that can take the same text (`(a|a)+`, `(a|aa)+`, `(a?a?)+`) ---
_P = _sre_parse
_END = -1  # what follows the whole regex: re.match lets anything (or nothing) follow
_NONE: frozenset = frozenset()
_UNIVERSE = frozenset(range(128)) | {0xDF, 0xE9, 0x130, 0x3B1, 0x4E00, 0x2028}  # ASCII and a few others
_CATEGORIES = {
    "CATEGORY_DIGIT": r"\d",
    "CATEGORY_NOT_DIGIT": r"\D",
    "CATEGORY_SPACE": r"\s",
    "CATEGORY_NOT_SPACE": r"\S",
    "CATEGORY_WORD": r"\w",
    "CATEGORY_NOT_WORD": r"\W",
    "CATEGORY_LINEBREAK": "\n",
    "CATEGORY_NOT_LINEBREAK": "[^\n]",
}
_EMPTY, _MAYBE, _CONSUMED = "empty", "maybe", "consumed"  # what the current iteration of a repeat has consumed


def _folded(chars) -> frozenset:
    """The characters with their other cases: patterns match case-insensitively by default."""
    out = set(chars)
    for c in chars:
        out.update(ord(o) for o in (chr(c).lower(), chr(c).upper()) if len(o) == 1)
    return frozenset(out)


def _charset(op, av) -> Optional[frozenset]:
    """The characters (of a sample universe) that a one-character node matches; None: not such a node."""
    if op is _P.LITERAL:
        return _folded({av})
    if op is _P.NOT_LITERAL:
        return _UNIVERSE - _folded({av})
    if op is _P.ANY:
        return _UNIVERSE
    if op is not _P.IN:
        return None
    chars, negate = set(), False
    for iop, iav in av:
        if iop is _P.NEGATE:
            negate = True
        elif iop is _P.LITERAL:
            chars.add(iav)
        elif iop is _P.RANGE:
            chars.update(c for c in _UNIVERSE if iav[0] <= c <= iav[1])
            chars.update(iav)
        elif iop is _P.CATEGORY and str(iav) in _CATEGORIES:
            rx = re.compile(_CATEGORIES[str(iav)])
            chars.update(c for c in _UNIVERSE if rx.fullmatch(chr(c)))
        else:  # not modelled: as if it matched every character (the guard errs on the side of refusing)
            chars.update(_UNIVERSE)
    chars = _folded(chars)
    return _UNIVERSE - chars if negate else chars


def _cont(state: str, fc: frozenset, fe: frozenset) -> frozenset:
    return fc if state == _CONSUMED else fe if state == _EMPTY else fc | fe


class _Choices:
    """Walks a parsed regex with, at each node, the characters that can come next (the next iteration of the
    enclosing repeat included), and notes a choice inside a repeat whose alternatives can start with the same
    character. Such a repeat can match one text in exponentially many ways, and `re` tries all of them on a name
    that almost matches: `(a|a)+$` takes seconds at 26 characters. An iteration that consumed nothing ends a repeat
    in `re`, so `(a?)+` is no such case: the state (_EMPTY, _MAYBE, _CONSUMED) tracks it."""

    def __init__(self, check: bool):
        self.check, self.found = check, False

    @staticmethod
    def shape(op, av) -> tuple[frozenset, bool]:
        """(characters that can start a non-empty match of the node, whether it can match empty)."""
        return _Choices(check=False).node(op, av, _NONE, _NONE, _CONSUMED, False)

    @staticmethod
    def shape_of(items) -> tuple[frozenset, bool]:
        first, nullable = _NONE, True
        for op, av in items:
            f, n = _Choices.shape(op, av)
            first |= f
            if not n:
                return first, False
        return first, nullable

    def seq(self, items, fc: frozenset, fe: frozenset, state: str, loop: bool) -> frozenset:
        """What can start `items` then its continuation (`fc` once the iteration consumed, `fe` while it has not),
        given the iteration's state before them; checks the choices inside."""
        items, states = list(items), []
        for op, av in items:
            states.append(state)
            first, nullable = self.shape(op, av)
            if state == _CONSUMED or not nullable:
                state = _CONSUMED
            elif first:
                state = _MAYBE
        sfc, sfe = fc, fe
        for i in range(len(items) - 1, -1, -1):
            op, av = items[i]
            first, nullable = self.node(op, av, sfc, sfe, states[i], loop)
            sfc, sfe = (first | sfc, first | sfe) if nullable else (first, first)
        return _cont(states[0] if states else state, sfc, sfe)

    def node(self, op, av, fc, fe, state, loop) -> tuple[frozenset, bool]:
        chars = _charset(op, av)
        if chars is not None:
            return chars, False
        if op is _P.AT:
            return _NONE, True
        if op in (_P.ASSERT, _P.ASSERT_NOT):
            if self.check:
                self.seq(av[1], frozenset({_END}), frozenset({_END}), _CONSUMED, False)
            return _NONE, True
        if op is _P.SUBPATTERN or op is getattr(_P, "ATOMIC_GROUP", None):
            sub = av[-1] if op is _P.SUBPATTERN else av
            if self.check:
                self.seq(sub, fc, fe, state, loop)
            return self.shape_of(sub)
        if op is _P.BRANCH or op is _P.GROUPREF_EXISTS:
            alts = av[1] if op is _P.BRANCH else [av[1], av[2] or []]
            if self.check:
                entries = [self.seq(alt, fc, fe, state, loop) for alt in alts]
                if loop and any(a & b for i, a in enumerate(entries) for b in entries[i + 1 :]):
                    self.found = True
            shapes = [self.shape_of(alt) for alt in alts]
            return frozenset().union(*(f for f, _ in shapes)), any(n for _, n in shapes)
        if op in _REPEATS:
            lo, hi, sub = av
            first, nullable = self.shape_of(sub)
            if hi == 0:
                return _NONE, True
            if self.check:
                if hi > 1:  # the body, followed by its next iteration or by what follows the repeat
                    self.seq(sub, first | fc, _cont(state, fc, fe), _EMPTY, True)
                else:
                    self.seq(sub, fc, fe, state, loop)
                    if lo == 0 and loop and first & _cont(state, fc, fe):
                        self.found = True  # taking it or skipping it can start the same way
            return first, nullable or lo == 0
        return _UNIVERSE, True  # back-references and anything not modelled: any character, or none


def _repeats_ambiguous_choice(parsed) -> bool:
    walk = _Choices(check=True)
    walk.seq(parsed, frozenset({_END}), frozenset({_END}), _CONSUMED, False)
    return walk.found


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
                    "on some names: rewrite it without the nested repeat (e.g. 'a+$' instead of '(a+)+$')"
                )
            if _repeats_ambiguous_choice(parsed):
                raise ValueError(
                    f"regex {rx!r} repeats a choice whose alternatives can start with the same character (like "
                    "'(a|a)+' or "
                    "'(a|aa)+'), which can take exponential time on some names: make the alternatives start "
                    "differently or drop the repeat (e.g. 'a+$' instead of '(a|aa)+$')"
                )
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
        """What Dagster's ScheduleDefinition accepts (dagster._utils.schedules.is_valid_cron_string: croniter's
        parse, 5 fields, not February 30/31), checked here with croniter itself: the core imports no Dagster."""
        from croniter import croniter

        want = "want 5 fields, minute hour day-of-month month day-of-week, e.g. '0 5 * * *' or '*/30 * * * 1-5'"
        try:
            valid = croniter.is_valid(cron)
            fields = croniter.expand(cron)[0] if valid else []
        except Exception:  # noqa: BLE001 - any parse failure is an invalid expression
            valid, fields = False, []
        if not valid or len(fields) != 5:
            raise ValueError(f"invalid cron expression {cron!r} ({want})")
        if fields[3] == [2] and len(fields[2]) == 1 and fields[2][0] in (30, 31):
            raise ValueError(f"cron expression {cron!r} never fires: February has no day {fields[2][0]}")
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
    """What an extraction run's pod asks Kubernetes for (request = limit for memory). A run reads batch_size
    databases at a time, so its memory follows the batch, not the run: 512Mi holds ordinary databases with headroom
    (a run of 1,500 of bench/'s XL peaked at 284 MiB, bench/DEPLOYED.md). A source with databases of thousands of
    tables, whose run also pushes them (push_from_extraction), wants 1Gi."""

    cpu: str = Field(
        default="250m", pattern=r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$", description="a Kubernetes CPU quantity: 250m, 1, 1.5"
    )
    memory: str = Field(
        default="512Mi", pattern=r"^[0-9]+(Mi|Gi)$", description="a Kubernetes memory quantity in Mi or Gi: 512Mi, 2Gi"
    )


class Profile(_Strict):
    """Table statistics (row estimate, column count, size) sent as DataHub's datasetProfile, from the catalog alone:
    no query touches a row. They move with the data, so they stay out of the schema hash; a database's file is
    rewritten (and pushed) for them only when a table's row estimate or size moved by more than `change_share` of
    its last written value and by more than the figure's floor."""

    enabled: bool = True
    change_share: float = Field(
        default=0.1,
        ge=0,
        le=100,
        description="rewrite when a figure moved by more than this share of its last "
        "written value (0.1: 10%; 0 with zero floors: on every change)",
    )
    min_rows: int = Field(default=1000, ge=0, description="a row estimate moving by fewer rows is not a change")
    min_bytes: int = Field(default=1 << 20, ge=0, description="a size moving by fewer bytes is not a change")

    @property
    def floors(self) -> tuple[int, int]:
        return self.min_rows, self.min_bytes


# Largest run the default run size makes: its bulk reads are batch_size at a time, so memory follows batch_size; a
# run of this many ordinary databases takes one to two minutes on a first fill (bench/NOTES.md, XL).
AUTO_RUN_SIZE_MAX = 1500


class SourceConfig(_Strict):
    """The fields every source has. A subclass adds `type: Literal[...]` (the registry key), its connection fields
    and its `database_allowed`; it may override a default (batch_size, sensor_interval_s) by redeclaring the field."""

    # the key of the database-level pattern in this source's YAML (database_pattern, dataset_pattern)
    database_pattern_field: ClassVar[str] = "database_pattern"

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Dagster-safe identifier")
    type: str
    table_pattern: Pattern = Field(default=Pattern(), description='matched against "database.table"')
    include_views: bool = True
    env: str = "PROD"
    platform_instance: Optional[str] = None
    batch_size: int = Field(
        default=200,
        ge=1,
        le=1000,
        description="databases per bulk query (and the least per run unless databases_per_run is set)",
    )
    max_concurrent_runs: int = Field(default=2, ge=1, le=64, description="extraction runs against this source at once")
    databases_per_run: Optional[int] = Field(
        default=None,
        ge=1,
        le=10000,
        description="databases per extraction run of the schedule and the schema sensor (each run still reads them "
        "in bulk queries of batch_size); default: batch_size, grown on a large estate until a refresh "
        "needs no more runs than run at once (max_concurrent_runs), up to 1,500 per run",
    )
    sensor_interval_s: int = Field(
        default=15, ge=5, le=86400, description="seconds between the schema sensor's fingerprint queries"
    )
    schedule: Schedule = Schedule()
    coverage_threshold: float = Field(default=0.5, ge=0, le=1)
    run_pod: RunPod = RunPod()
    owners: list[str] = Field(
        default_factory=list, description="Dagster owners of the source's assets: e-mail addresses or team:<name>"
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Dagster tags of the source's assets")
    history: History = Field(default_factory=History, description="schema versions kept in the store")
    risk: Risk = Field(default_factory=Risk, description="overrides of the risk classes of changes")
    notifications: Notifications = Field(default_factory=Notifications, description="change notifications")
    freshness_hours: Optional[float] = Field(
        default=26,
        gt=0,
        le=24 * 366,
        description="the push asset is stale (Dagster freshness policy) when DataHub was not confirmed in sync "
        "with the databases for this long; null: no policy",
    )

    def run_size(self, n_databases: int) -> int:
        """Databases per extraction run when `n_databases` are to be refreshed: `databases_per_run`, or by default
        batch_size, grown so that the refresh makes at most max_concurrent_runs runs (each run costs a process start,
        a job load and, on Kubernetes, a pod), but no more than AUTO_RUN_SIZE_MAX."""
        if self.databases_per_run is not None:
            return self.databases_per_run
        spread = -(-n_databases // self.max_concurrent_runs)
        return max(self.batch_size, min(spread, AUTO_RUN_SIZE_MAX))

    @field_validator("owners")
    @classmethod
    def _owners(cls, owners: list[str]) -> list[str]:
        for o in owners:
            if not re.fullmatch(r"team:[A-Za-z0-9_.-]+|[^@\s]+@[^@\s]+\.[^@\s]+", o):
                raise ValueError(f"owner {o!r}: give an e-mail address or team:<name> (Dagster's owner forms)")
        return owners

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: dict[str, str]) -> dict[str, str]:
        for k, v in tags.items():  # Dagster's rules for asset tags
            if not re.fullmatch(r"([A-Za-z0-9_.-]{1,63}/)?[A-Za-z0-9_.-]{1,63}", k) or not re.fullmatch(
                r"[A-Za-z0-9_.-]{0,63}", v
            ):
                raise ValueError(
                    f"tag {k!r}: {v!r}: keys and values may hold letters, digits, '_', '-' and '.' "
                    "(at most 63 characters; a key may have a 'prefix/')"
                )
        return tags

    @field_validator("env")
    @classmethod
    def _known_env(cls, env: str) -> str:
        from datahub.configuration.source_common import ALL_ENV_TYPES

        if env.upper() not in ALL_ENV_TYPES:
            raise ValueError(f"unknown env {env!r}; DataHub knows {sorted(ALL_ENV_TYPES)}")
        return env.upper()

    @classmethod
    def unknown_key_hint(cls, key: str) -> Optional[str]:
        """What to tell someone who wrote `key`, which this source does not know (None: just "unknown key")."""
        return "passwords are never inline: use password_env" if key == "password" else None

    def database_allowed(self, database: str) -> bool:
        raise NotImplementedError

    def table_allowed(self, database: str, table: str) -> bool:
        return self.table_pattern.allowed(f"{database}.{table}")

    def check_secrets(self) -> None:
        """Raise ConfigError when a secret this source needs is missing from the environment (at load time, not at
        5 a.m.). Sources whose credentials come from elsewhere (BigQuery: Application Default Credentials) keep
        this no-op."""


class ServerSource(SourceConfig):
    """A source that logs in to a database server with a user and a password taken from the environment."""

    host: str
    port: int = Field(ge=1, le=65535)
    user: str
    password_env: str = Field(description="name of the environment variable holding the password")
    database_pattern: Pattern = Pattern()
    profile: Profile = Profile()
    domain: dict[str, Pattern] = Field(
        default_factory=dict,
        description="DataHub domains as DataHub's SQL sources assign them: {domain URN: allow/deny patterns over "
        '"database.table" (and "database" for the database container)}; when several allow a name, '
        "the last one listed wins (as in DataHub's sources)",
    )
    datahub_ownership: bool = Field(
        default=False,
        description="send `owners` to DataHub as each dataset's and database's ownership "
        "(technical owners: team:<name> as a group, an e-mail as a user)",
    )
    connect_timeout_s: float = Field(default=10, gt=0, le=3600)
    query_timeout_s: float = Field(
        default=300,
        gt=0,
        le=86400,
        description="longest wait for one catalog query; also bounds a sensor tick's fingerprint query",
    )

    @field_validator("domain")
    @classmethod
    def _domain_urns(cls, domain: dict[str, Pattern]) -> dict[str, Pattern]:
        for key in domain:
            if not key.startswith("urn:li:domain:"):
                raise ValueError(
                    f"domain key {key!r} is not a domain URN: give it as urn:li:domain:<id> (DataHub's "
                    "source would look a name up in GMS; extraction never talks to DataHub)"
                )
        return domain

    def password(self) -> str:
        try:
            return os.environ[self.password_env]
        except KeyError:
            raise ConfigError(
                f"source {self.name!r}: environment variable {self.password_env} (password_env) is not set"
            ) from None

    def check_secrets(self) -> None:
        self.password()
