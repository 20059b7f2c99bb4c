"""Configuration of schema history, risk classes and change notifications (the `history:`, `risk:` and
`notifications:` blocks of a source, and the project's `notifications:` block for owners). No Dagster, no SQL.
"""

from __future__ import annotations

import re
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from metadata_assets import risk
from metadata_assets.strict import StrictModel as _Strict  # YAML's own scalar types, as in every block

RiskClass = Literal["safe", "warning", "breaking"]


class History(_Strict):
    """Each extraction that changes a database's schema appends its snapshot to `<source>/history/<database>/` in
    the store. Retention: at most `keep_versions` versions per database, and none older than `keep_days` except the
    current one (the oldest go first; nothing else ever rewrites or removes a version)."""

    enabled: bool = True
    keep_versions: int = Field(default=100, ge=2, le=100_000)
    keep_days: Optional[float] = Field(
        default=365, gt=0, le=36_500, description="null: versions are kept by count only"
    )


class Risk(_Strict):
    """Overrides of the rules' classes (risk.RULES lists every rule with its default and meaning):
    `rules: {view_sql_changed: breaking, column_default_changed: safe}`."""

    rules: dict[str, RiskClass] = Field(default_factory=dict)

    @field_validator("rules")
    @classmethod
    def _known(cls, rules: dict[str, str]) -> dict[str, str]:
        risk.check_overrides(rules)
        return rules


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Webhook(_Strict):
    """A receiver of change notifications. Its URL is read from the environment variable `url_env` when a
    notification is sent (a webhook URL is a secret: it is never written in the config)."""

    url_env: str = Field(description="name of the environment variable holding the webhook's URL")
    format: Literal["slack", "json"] = Field(
        default="slack", description="slack: Slack-compatible {text, blocks}; json: generic"
    )
    min_risk: RiskClass = Field(default="breaking", description="send changes of this class or worse")
    name: Optional[str] = Field(default=None, description="how messages and Dagit name it (default: url_env)")

    @model_validator(mode="before")
    @classmethod
    def _no_inline_url(cls, data):
        if isinstance(data, dict) and "url" in data:
            raise ValueError("webhook URLs are never inline: put it in an environment variable and name it in url_env")
        return data

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, v: str) -> str:
        if not _ENV_NAME.match(v):
            raise ValueError(f"url_env {v!r} is not an environment variable name (letters, digits, _)")
        return v

    @property
    def id(self) -> str:
        """What an outbox entry records as delivered: stable while the webhook's config is."""
        return f"{self.name or self.url_env}:{self.format}"

    @property
    def label(self) -> str:
        return self.name or self.url_env


class Notifications(_Strict):
    """A source's change notifications: its own webhooks, and those of its owners (the project's
    `notifications.owners`) unless `notify_owners` is false."""

    webhooks: list[Webhook] = Field(default_factory=list)
    notify_owners: bool = True
    queue_risk: RiskClass = Field(
        default="warning",
        description="versions whose worst change is of this class or worse are queued in the outbox; a webhook "
        "can only be sent what is queued",
    )
    timeout_s: float = Field(default=5, gt=0, le=60, description="one HTTP request's timeout")
    attempts: int = Field(default=3, ge=1, le=10, description="tries per webhook and delivery pass")
    max_age_days: float = Field(
        default=7, gt=0, le=365, description="an outbox entry not delivered for this long is dropped (and said so)"
    )


class OwnerNotifications(_Strict):
    """The project's `notifications:` block: webhooks per owner (`team:payments`, an e-mail), used for the
    changes of every source that lists the owner in `owners`."""

    owners: dict[str, list[Webhook]] = Field(default_factory=dict)
