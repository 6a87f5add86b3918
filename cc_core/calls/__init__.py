"""Calls: what happened to each inbound call, stored for the agents' screens and reports."""
