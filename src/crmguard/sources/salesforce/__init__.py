"""Salesforce log formats: Event Log Files, Real-Time Event Monitoring, SetupAuditTrail."""
