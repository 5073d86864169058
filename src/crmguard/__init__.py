"""crmguard: detect, prevent and respond to customer-data theft from a SaaS CRM and its SSO."""

__version__ = "0.1.0"
