"""Hotline: the contact-center controller that drives Asterisk (see docs/architecture.md)."""

__version__ = "0.1.0"
