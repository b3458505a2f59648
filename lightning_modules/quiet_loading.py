"""Load weights without transformers' per-component "Loading weights" progress bar.

transformers 5 draws a bar for every component it loads, even from a local folder in milliseconds: every tool and
run printed two of them, which users learn to ignore. Downloads keep huggingface_hub's own progress bars (they
measure something). transformers offers ``logging.set_tqdm_hook`` for exactly this; older versions have neither the
hook nor the bar, and are left alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

LOADING_BAR = "Loading weights"


def _without_loading_bar(factory: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """transformers' tqdm hook: the loading bar disabled, every other bar as transformers makes it."""
    if kwargs.get("desc") == LOADING_BAR:
        kwargs = {**kwargs, "disable": True}
    return factory(*args, **kwargs)


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Inside the block, transformers draws no "Loading weights" bar (any hook set before is restored after)."""
    from transformers.utils import logging as transformers_logging

    set_hook = getattr(transformers_logging, "set_tqdm_hook", None)
    if set_hook is None:
        yield
        return
    previous = getattr(transformers_logging, "_tqdm_hook", None)
    set_hook(_without_loading_bar)
    try:
        yield
    finally:
        set_hook(previous)
