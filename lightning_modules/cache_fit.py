"""Whether a latent cache was built for the model being trained: the same base, backbone kind and text layout.

The cache's index records them (``audioldm-lora cache`` writes :meth:`Backbone.cache_layout` into its ``model``);
caches written before layouts were recorded are AudioLDM's (one ``text_embeds`` vector per caption) and keep
working with an AudioLDM model. Anything else fails at the start of training with the command that rebuilds it.
"""

from __future__ import annotations

from typing import Any

from datamodules.errors import DataSourceError
from lightning_modules.backbone import Backbone

LEGACY_LAYOUT: dict[str, Any] = {"backbone": "audioldm", "text_fields": ["text_embeds"], "text_streams": {}}
"""The layout of caches whose index predates layout records."""
REBUILD = "rebuild it with `audioldm-lora cache --config <your config>` (or train from audio without latent_cache)"


def check_cache_fits(cached: dict[str, Any], backbone: Backbone, pretrained_model: str) -> None:
    """Raise unless the cache's recorded model (its index's ``model``) is ``pretrained_model`` with ``backbone``'s
    kind and text layout.

    Raises:
        DataSourceError: naming what differs and how to rebuild the cache.
    """
    recorded = {key: cached.get(key, default) for key, default in LEGACY_LAYOUT.items()}
    if cached.get("name") != pretrained_model:
        other_kind = recorded["backbone"] != backbone.kind
        kinds = (f" ({recorded['backbone']})", f" ({backbone.kind})") if other_kind else ("", "")
        raise DataSourceError(f"The latent cache was built with {cached.get('name')}{kinds[0]}, but the model is "
                              f"{pretrained_model}{kinds[1]}; {REBUILD}.")
    expected = backbone.cache_layout()
    differing = [key for key in expected if recorded[key] != expected[key]]
    if differing:
        shown = "; ".join(f"{key}: {recorded[key]} in the cache, {expected[key]} for this model" for key in differing)
        raise DataSourceError(f"The latent cache was built for another backbone or layout ({shown}); {REBUILD}.")
