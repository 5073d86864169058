"""Simulate a retailer's Salesforce (CRM) and Okta (SSO) telemetry with labelled attack campaigns.

``simulate(out, users, days, seed)`` writes, under ``out``: Salesforce Event Log File CSVs
(``salesforce/elf/<day>/<EventType>.csv``), Real-Time Event Monitoring records
(``salesforce/rtem/<day>/<Object>.json``, one JSON object per line), SetupAuditTrail records
(``salesforce/audit/<day>.json``), the Okta System Log (``okta/<day>.json``, a JSON array), the CRM
customer export (``crm/customers.csv``), an org snapshot (``org/snapshot.json``) and the ground truth
(``labels.json``). The same arguments always give the same bytes.

The simulator knows nothing of the detector: it never imports ``crmguard.engine``, ``rules`` or
``anomaly``.
"""

from crmguard.simulate.campaigns import CAMPAIGNS
from crmguard.simulate.labels import CampaignSummary, SimulationSummary
from crmguard.simulate.runner import DEFAULT_START, simulate

__all__ = ["CAMPAIGNS", "DEFAULT_START", "CampaignSummary", "SimulationSummary", "simulate"]
