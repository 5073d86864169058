"""Alert delivery through an outbox in the state DB: webhook, Slack, e-mail, OCSF JSONL file.

The library API the watcher calls::

    config = load_config(home / "sinks.yml")
    enqueue(state_db, new_alert_ids, config)     # -> rows added
    deliver_due(state_db, config)                # -> DeliveryReport
"""

from crmguard.sinks.config import SinksConfig, load_config
from crmguard.sinks.deliver import DeliveryReport, deliver_due, deliver_loop, deliver_stored
from crmguard.sinks.outbox import enqueue

__all__ = ["DeliveryReport", "SinksConfig", "deliver_due", "deliver_loop", "deliver_stored", "enqueue", "load_config"]
