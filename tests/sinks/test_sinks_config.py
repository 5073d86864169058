"""sinks.yml: parsing, durations, routing, secrets from the environment, errors that say where."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import yaml

from crmguard.errors import ConfigError
from crmguard.sinks.config import FileSink, Retry, SmtpSink, load_config, parse_config

FULL = """
sinks:
  - name: soc-webhook
    type: webhook
    url: https://soc.example.com/hooks/crmguard
    headers: {X-Team: soc}
    bearer_token_env: SOC_TOKEN
    min_severity: medium
    exclude_rules: ["*okta*"]
    retry: {initial: 10s, max_delay: 5m}
  - name: slack
    type: slack
    url_env: SLACK_URL
    min_severity: high
    suppress_actor_for: 30m
  - name: mail
    type: smtp
    host: smtp.example.com
    port: 587
    starttls: true
    from: crmguard@example.com
    to: [soc@example.com]
    rules: ["Bulk export*", 3f1c8a52-1b7e-4c3d-9e55-7a2b4c6d8e01]
    retry: {max_attempts: 20}
  - name: siem
    type: file
    path: findings/crmguard.ocsf.jsonl
"""


def test_full_example_parses(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOC_TOKEN", "t0ken")
    monkeypatch.setenv("SLACK_URL", "https://hooks.slack.com/services/T/B/x")
    (tmp_path / "sinks.yml").write_text(FULL)
    config = load_config(tmp_path / "sinks.yml")
    webhook, slack, mail, siem = config.sinks
    assert webhook.retry.initial == dt.timedelta(seconds=10) and webhook.retry.max_attempts is None
    assert slack.suppress_actor_for == dt.timedelta(minutes=30)
    assert isinstance(mail, SmtpSink) and mail.sender == "crmguard@example.com" and mail.retry.max_attempts == 20
    assert isinstance(siem, FileSink) and siem.path == tmp_path / "findings" / "crmguard.ocsf.jsonl"
    assert config.secret("SOC_TOKEN") == "t0ken"
    assert "t0ken" not in repr(config) and "t0ken" not in config.model_dump_json()


def test_routing_by_severity_rule_id_and_title_glob() -> None:
    config = parse_config({"sinks": [
        {"name": "a", "type": "file", "path": "/tmp/x", "min_severity": "medium", "exclude_rules": ["*okta*"]},
        {"name": "b", "type": "file", "path": "/tmp/y", "rules": ["rule-1", "Bulk export*"]}]})
    a, b = config.sinks
    assert a.routes("r", "Mass export", "medium") and a.routes("r", "Mass export", "critical")
    assert not a.routes("r", "Mass export", "low")
    assert not a.routes("r", "Okta MFA reset then export", "high")  # globs ignore case
    assert b.routes("rule-1", "anything", "informational") and b.routes("r9", "bulk export of contacts", "low")
    assert not b.routes("r9", "Login from TOR", "critical")


def test_backoff_doubles_and_is_capped() -> None:
    retry = Retry(initial="10s", max_delay="5m")
    assert [retry.delay(n).total_seconds() for n in range(1, 8)] == [10, 20, 40, 80, 160, 300, 300]
    assert retry.delay(10_000) == dt.timedelta(minutes=5)


@pytest.mark.parametrize(("doc", "field", "words"), [
    ({"sinks": [{"name": "a", "type": "file", "path": "x", "min_severty": "high"}]}, "sinks.0.file.min_severty", "Extra"),
    ({"sinks": [{"name": "a", "type": "pager"}]}, "sinks.0", "tag"),
    ({"sinks": [{"name": "a", "type": "webhook"}]}, "sinks.0.webhook", "exactly one of url and url_env"),
    ({"sinks": [{"name": "a", "type": "webhook", "url": "ftp://x"}]}, "sinks.0.webhook.url", "pattern"),
    ({"sinks": [{"name": "a", "type": "file", "path": "x"}, {"name": "a", "type": "file", "path": "y"}]}, None,
     "unique: a"),
    ({"sinks": [{"name": "a", "type": "file", "path": "x", "suppress_actor_for": "soon"}]},
     "sinks.0.file.suppress_actor_for", "duration"),
    ({"sinks": [{"name": "a", "type": "file", "path": "x", "timeout": "5m"}]}, "sinks.0.file.timeout", "less than or equal"),
])
def test_invalid_config_names_the_field(doc: dict, field: str | None, words: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(doc, "sinks.yml")
    assert info.value.file == "sinks.yml" and info.value.field == field and words in str(info.value)


def test_missing_secret_env_fails_at_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_TOKEN", raising=False)
    with pytest.raises(ConfigError, match="NOPE_TOKEN is not set"):
        parse_config({"sinks": [{"name": "a", "type": "webhook", "url": "http://x", "bearer_token_env": "NOPE_TOKEN"}]})


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "sinks.yml")
    (tmp_path / "bad.yml").write_text("sinks:\n  - name: [\n")
    with pytest.raises(ConfigError, match="not valid YAML") as info:
        load_config(tmp_path / "bad.yml")
    assert info.value.line is not None
    (tmp_path / "empty.yml").write_text("")
    assert load_config(tmp_path / "empty.yml").sinks == []


def test_readme_sinks_example_is_valid() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("```yaml\nsinks:\n", 1)[1].split("```", 1)[0]
    env = {"SOAR_TOKEN": "t", "SLACK_WEBHOOK_URL": "https://hooks.slack.com/x", "SMTP_USER": "u", "SMTP_PASSWORD": "p"}
    config = parse_config(yaml.safe_load("sinks:\n" + block), "README.md", Path("/etc/crmguard"), environ=env)
    assert [s.type for s in config.sinks] == ["webhook", "slack", "smtp", "file"]
    assert config.sinks[3].path == Path("/etc/crmguard/findings/crmguard.ocsf.jsonl")
