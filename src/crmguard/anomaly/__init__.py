"""Behavioural baselines: per-identity features over the lake, scored against the identity's own
history and its peers', raised as alerts in the same store as rule alerts."""

from crmguard.anomaly.alerting import RULE_ID, find_anomalies
from crmguard.anomaly.score import Settings
from crmguard.anomaly.store import BaselineStore, UpdateResult

__all__ = ["RULE_ID", "BaselineStore", "Settings", "UpdateResult", "find_anomalies"]
