""""Did you mean ...?" for a misspelt ``--model.init_args.KEY`` or ``--data.init_args.KEY``.

jsonargparse reports ``Problem with given class_path 'pkg.Class': Option 'lora_rnak' is not accepted`` and
``lightning fit --help`` lists no ``init_args`` of a subclass (only ``--model.help pkg.Class`` does), so a user is
left to guess. :func:`suggest_key` reads the class's constructor and names the closest keys and the help command
that lists them all.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import re

_UNKNOWN_OPTION = re.compile(
    r'Parser key "(?P<group>\w+)".*?class_path \'(?P<class_path>[\w.]+)\'.*?Option \'(?P<key>\w+)\' is not accepted',
    re.S,
)


def constructor_keys(cls: type) -> list[str]:
    """The keyword parameters of ``cls.__init__`` and, while a constructor passes ``**kwargs`` on, its bases'."""
    keys: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        parameters = inspect.signature(vars(klass)["__init__"]).parameters.values()
        keys += [p.name for p in parameters if p.name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                 and p.name not in keys]
        if not any(p.kind is p.VAR_KEYWORD for p in parameters):
            break
    return keys


def suggest_key(message: str, prog: str) -> str | None:
    """``did you mean caption_dropout? `PROG --model.help pkg.Class` lists every key`` for jsonargparse's
    unknown-option error, else None (also when the class cannot be imported). A class that renamed settings says
    how an old key is spelt now through its ``renamed_key_hint(key) -> str | None``."""
    match = _UNKNOWN_OPTION.search(message)
    if match is None:
        return None
    module_name, _, class_name = match["class_path"].rpartition(".")
    try:
        cls = getattr(importlib.import_module(module_name), class_name)
        keys = constructor_keys(cls)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    renamed = getattr(cls, "renamed_key_hint", None)
    hint = renamed(match["key"]) if callable(renamed) else None
    if hint:
        return hint
    close = difflib.get_close_matches(match["key"], keys, n=1, cutoff=0.6)
    listing = f"`{prog} --{match['group']}.help {match['class_path']}` lists every key"
    return (f"did you mean {close[0]}? " if close else "") + listing
