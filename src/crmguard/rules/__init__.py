"""The built-in Sigma rule pack (``builtin/*.yml``) for CRM data theft."""
