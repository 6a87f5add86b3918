"""ACD: agents, queues and the router (T4, T9, T10; issue 4).

The pure core — :mod:`~cc_core.acd.model` (the values), :mod:`~cc_core.acd.agent_state` (the
agent state machine) and :mod:`~cc_core.acd.router` (who gets which contact) — knows no switch,
database or event loop: the controller feeds these functions the state and carries their
decisions out. Around it: :mod:`~cc_core.acd.config` (the model from the settings) and
:mod:`~cc_core.acd.store` (agents' current states and their history, for restarts and reports).
"""
