"""People who use the product: accounts with one role each, their login sessions, and the audit
log of what they did with personal data (P2).

Roles: ``agent``, ``supervisor``, ``admin``, ``reviewer`` (quality review), ``auditor``. There is
no default account: the first admin is made with ``hotline user add <name> --role admin``.
"""

from __future__ import annotations

ROLES = ("agent", "supervisor", "admin", "reviewer", "auditor")
