"""Load weights without messages that say nothing to the user.

- transformers 5 draws a "Loading weights" bar for every component it loads, and a "Writing model shards" bar for
  every one it saves, even from and to a local folder in milliseconds: every tool and run printed several, which
  users learn to ignore. Downloads keep
  huggingface_hub's own progress bars (they measure something). transformers offers ``logging.set_tqdm_hook`` for
  exactly this; older versions have neither the hook nor the bar.
- diffusers passes huggingface_hub's deprecated ``local_dir_use_symlinks`` on every config it fetches by hub id,
  and huggingface_hub warns each time; the warning is about diffusers' call, not the user's settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import warnings
from contextlib import contextmanager
from typing import Any

SILENCED_BARS = ("Loading weights", "Writing model shards")


def _without_loading_bar(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """transformers' tqdm hook: the loading and writing bars disabled, every other bar as transformers makes it."""
    if kwargs.get("desc") in SILENCED_BARS:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Inside the block, no "Loading weights" or "Writing model shards" bar and no ``local_dir_use_symlinks`` warning (any tqdm hook set
    before is restored after)."""
    from transformers.utils import logging as transformers_logging

    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)
    previous = getattr(transformers_logging, "_tqdm_hook", None)
    if set_hook is not None:
        set_hook(_without_loading_bar)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The `local_dir_use_symlinks` argument is deprecated")
            yield
    finally:
        if set_hook is not None:
            set_hook(previous)
