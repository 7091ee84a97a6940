"""One exception type for user-facing errors.

The CLI prints ``afcu: error: <message>`` and exits 2 for these, without a
traceback, so each message must name the file/field at fault and the fix.
"""


class AfcuError(Exception):
    """A problem with the user's input or environment, with a one-line fix."""
