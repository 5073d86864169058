"""``sinks.yml``: where alerts go, which ones, how often to retry, and how long to keep quiet.

Strict models (``extra="forbid"``): a misspelt key in a delivery config would otherwise silently
route nothing or send to the wrong place. Secrets are never in the file, only the names of the
environment variables holding them; they are read when the file is loaded, so a missing one fails
at start-up, not at the first alert.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import os
import re
from pathlib import Path
from typing import Annotated, Literal, Optional, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from crmguard.errors import ConfigError

SEVERITIES = ("informational", "low", "medium", "high", "critical")
"""Sigma levels, lowest first; an alert's rank is its index + 1 (OCSF severity_id)."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


def severity_rank(severity: str | None) -> int:
    """Return 1 (informational) … 5 (critical) for a severity name, 0 when unknown."""
    return SEVERITIES.index(severity) + 1 if severity in SEVERITIES else 0


def parse_duration(value: object) -> object:
    """Turn ``"30m"``, ``"10s"``, ``"1.5h"``, ``"2d"`` or a number of seconds into a timedelta;
    anything else is left for pydantic to judge."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    if isinstance(value, str) and (m := _DURATION.match(value)):
        return dt.timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])
    return value


Duration = Annotated[dt.timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Retry(_Strict):
    """Exponential backoff: ``initial``, doubled per failed attempt, capped at ``max_delay``.
    ``max_attempts`` None (the default) retries forever: a sink that is down delays, never drops."""

    initial: Duration = dt.timedelta(seconds=10)
    max_delay: Duration = dt.timedelta(minutes=5)
    max_attempts: Optional[int] = Field(default=None, ge=1)

    def delay(self, attempts: int) -> dt.timedelta:
        """Wait before the next attempt after ``attempts`` failed ones (1 → ``initial``)."""
        return min(self.initial * (2 ** min(max(attempts - 1, 0), 30)), self.max_delay)


class _Sink(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    min_severity: Literal["informational", "low", "medium", "high", "critical"] = "informational"
    rules: list[str] = Field(default_factory=list, description="Rule ids or title globs; empty = every rule.")
    exclude_rules: list[str] = Field(default_factory=list)
    suppress_actor_for: Optional[Duration] = None
    retry: Retry = Retry()
    timeout: Duration = Field(default=dt.timedelta(seconds=10), gt=dt.timedelta(0), le=dt.timedelta(seconds=60),
                              description="Per network operation; at most 60 s, under the deliverer's claim lease.")

    def routes(self, rule_id: str, title: str, severity: str) -> bool:
        """True when an alert of this rule and severity goes to this sink."""
        if severity_rank(severity) < severity_rank(self.min_severity):
            return False
        if self.rules and not any(_rule_matches(p, rule_id, title) for p in self.rules):
            return False
        return not any(_rule_matches(p, rule_id, title) for p in self.exclude_rules)


def _rule_matches(pattern: str, rule_id: str, title: str) -> bool:
    return pattern == rule_id or fnmatch.fnmatchcase(title.lower(), pattern.lower())


class _Http(_Sink):
    url: Optional[str] = Field(default=None, pattern=r"^https?://")
    url_env: Optional[str] = Field(default=None, description="Env var holding the URL (Slack URLs are secrets).")
    headers: dict[str, str] = Field(default_factory=dict)
    bearer_token_env: Optional[str] = None

    @model_validator(mode="after")
    def _one_url(self) -> _Http:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("give exactly one of url and url_env")
        return self


class WebhookSink(_Http):
    """POST the alert as JSON to ``url`` (generic receivers, SOAR, ticketing)."""

    type: Literal["webhook"]


class SlackSink(_Http):
    """POST a Slack Block Kit message to an incoming-webhook URL."""

    type: Literal["slack"]


class SmtpSink(_Sink):
    """Send an e-mail (plain text + HTML) through an SMTP server."""

    type: Literal["smtp"]
    host: str
    port: int = 25
    starttls: bool = False
    username_env: Optional[str] = None
    password_env: Optional[str] = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)


class FileSink(_Sink):
    """Append one OCSF Detection Finding per line to a JSONL file (for a SIEM to tail)."""

    type: Literal["file"]
    path: Path


Sink = Annotated[Union[WebhookSink, SlackSink, SmtpSink, FileSink], Field(discriminator="type")]


class SinksConfig(_Strict):
    """The parsed ``sinks.yml``: a list of sinks with unique names, and the environment secrets
    they name (``secrets``: env var name → value, read at load time, never printed)."""

    sinks: list[Sink] = Field(default_factory=list)
    secrets: dict[str, str] = Field(default_factory=dict, exclude=True, repr=False)

    @model_validator(mode="after")
    def _unique(self) -> SinksConfig:
        names = [s.name for s in self.sinks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"sink names must be unique: {', '.join(dupes)}")
        return self

    def by_name(self) -> dict[str, Sink]:
        """Return the sinks keyed by name."""
        return {s.name: s for s in self.sinks}

    def secret(self, env: str | None) -> str | None:
        """Return the value of the env var ``env`` as read at load time (None when ``env`` is None)."""
        return None if env is None else self.secrets.get(env, os.environ.get(env))


def _env_names(sink: Sink) -> list[str]:
    names = [getattr(sink, f, None) for f in ("url_env", "bearer_token_env", "username_env", "password_env")]
    return [n for n in names if n]


def parse_config(data: object, source: str = "sinks.yml", base: Path | None = None,
                 environ: dict[str, str] | None = None) -> SinksConfig:
    """Validate a decoded ``sinks.yml`` document; relative file paths are taken from ``base``.
    Returns the :class:`SinksConfig`; raises ``ConfigError`` naming ``source`` and the field for
    an invalid document or a missing environment variable."""
    env = os.environ if environ is None else environ
    if data is None:
        data = {}
    try:
        config = SinksConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{first['msg']} ({len(exc.errors())} problem(s))", file=source, field=field or None) from None
    secrets = {}
    for i, sink in enumerate(config.sinks):
        for name in _env_names(sink):
            if name not in env:
                raise ConfigError(f"environment variable {name} is not set (sink {sink.name})", file=source,
                                  field=f"sinks.{i}")
            secrets[name] = env[name]
    sinks = [s.model_copy(update={"path": (base / s.path)}) if isinstance(s, FileSink) and base and not s.path.is_absolute()
             else s for s in config.sinks]
    return SinksConfig.model_construct(sinks=sinks, secrets=secrets)


def load_config(path: str | Path) -> SinksConfig:
    """Read and validate the YAML file ``path``; returns the :class:`SinksConfig` (file sink paths
    relative to the file's folder). Raises ``ConfigError`` when the file is missing or invalid."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError("no such file; write one as shown in the README (section 'Alert delivery')",
                          file=str(path)) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise ConfigError(f"not valid YAML: {getattr(exc, 'problem', exc)}", file=str(path),
                          line=line + 1 if line is not None else None) from None
    return parse_config(data, str(path), path.parent)
