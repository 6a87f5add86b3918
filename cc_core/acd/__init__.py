"""ACD: agents, queues and the router (T4, T9, T10; issue 4).

The pure core: :mod:`~cc_core.acd.model` (the values), :mod:`~cc_core.acd.agent_state` (the agent
state machine) and :mod:`~cc_core.acd.router` (who gets which contact). No switch, database or
event loop here: the controller feeds these functions the state and carries their decisions out.
"""
