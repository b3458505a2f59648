"""The error a setting the user gave raises, wherever it is checked (module, callbacks, sampling).

One class so that every entry point reports it the same way: ``lightning fit`` and the tools print its message in
a few lines with exit status 2 (it is in :data:`audioldm_lora.tool_convention.USER_ERRORS`), while any other
exception is a bug and keeps its traceback. A plain ``ValueError`` is never taken for bad input.
"""

from __future__ import annotations


class SettingError(ValueError):
    """A setting is invalid; the message names the setting (``model.init_args.caption_dropout``, ``every_n_steps``)
    and what it accepts."""
