"""Okta log formats: the System Log."""
