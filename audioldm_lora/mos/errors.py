"""The one exception type of the listening-test kit.

Every problem the user can fix (a missing clip, a malformed answer file, answers from another test) is raised as
:class:`MosInputError` with a message that names the file and says what to do, so the command can print it and
exit non-zero without a traceback, and without having written anything.
"""

from __future__ import annotations


class MosInputError(ValueError):
    """Bad input to ``mos build`` or ``mos analyze``; the message is meant for the person running the command."""
