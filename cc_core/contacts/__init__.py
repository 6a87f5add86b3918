"""Contacts: one citizen across channels (issue 12 item 4; T1, T9).

A *contact* is a citizen; its *identities* are the ways a channel knows them (a phone number, a
web-chat visitor id, a WeChat ``external_userid``, an ID-card number when one is given); an
*interaction* is one call or conversation of that contact, with the agent who served it.
"Returning citizen to the same agent" and "earlier contacts of this citizen" are questions about
a contact's interactions, whatever channel each came by (decision 0016).

:mod:`.identity` and :mod:`.merge` are pure; :mod:`.store` reads and writes the tables.
"""
