"""Errors a user can cause and fix; the CLI prints them as one line, never a traceback."""


class HotlineError(Exception):
    """An error with a message that tells the user what to do."""


class SettingsError(HotlineError):
    """The settings file or an environment override is wrong."""


class SwitchError(HotlineError):
    """The switch (Asterisk) is missing, fails to start, or refuses us."""
