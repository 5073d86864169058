"""Respond: incidents, scoping, containment, regulator report, customer notices."""
