"""The only code that speaks to the switch: config rendering, process control, AMI, FastAGI.

Nothing here imports a domain module (.importlinter checks it). The domains receive typed events
from :mod:`cc_core.switch.events` through the bus, and ask for typed actions through
:class:`cc_core.switch.actions.SwitchControl`, which :class:`cc_core.switch.asterisk.AsteriskControl`
carries out over AMI (decision 0015).
"""
