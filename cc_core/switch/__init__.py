"""The only code that speaks to the switch: config rendering, process control, AMI, FastAGI.

Nothing here imports a domain module; the domains receive typed events from
:mod:`cc_core.switch.events` through the bus.
"""
