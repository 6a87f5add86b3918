"""The test harness: real Asterisk instances on free loopback ports, and one-line helpers.

* :mod:`.hotline` — the contact center under test (its switch, its controller process);
* :mod:`.world` — a second Asterisk that plays the carrier (callers) and the agents' phones;
* :mod:`.ami` — a synchronous AMI peer for tests, with event waiting by predicate and deadline.
"""
