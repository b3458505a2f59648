"""Caption policy: the caption as given, a template from the genre, or both, with a fallback for missing captions."""

from __future__ import annotations

from dataclasses import dataclass

from datamodules.bad_items import BadItemError, Reason
from datamodules.errors import DataSourceError


class CaptionTemplateError(DataSourceError):
    """A template that uses a field other than ``{genre}`` and ``{caption}``."""


def render_caption(template: str, genre: str, caption: str = "") -> str:
    """Fill a caption template; ``{genre}`` gets spaces for underscores, ``{caption}`` the given caption."""
    try:
        return template.format(genre=genre.replace("_", " "), caption=caption).strip(" ,")
    except (KeyError, IndexError) as error:
        raise CaptionTemplateError(
            f"Caption template {template!r} uses the unknown field {error}; only {{genre}} and {{caption}} exist."
        ) from None


@dataclass(frozen=True)
class CaptionPolicy:
    """How an item's training caption is made from its genre and its given caption.

    ``template``: ``{caption}`` (as given), ``{genre} music`` (from the genre only) or ``{caption}, {genre}``.
    ``fallback``: the template used when the template needs ``{caption}`` and the item has none; ``None`` makes
    such an item bad (:attr:`Reason.NO_CAPTION`).
    """

    template: str = "{caption}"
    fallback: str | None = "{genre} music"

    def __post_init__(self) -> None:
        render_caption(self.template, "genre", "caption")  # fail at configuration time, not at item N
        if self.fallback is not None:
            render_caption(self.fallback, "genre", "")

    @property
    def needs_caption(self) -> bool:
        """True when the template uses the given caption."""
        return "{caption}" in self.template

    def render(self, genre: str, given: str, source: str) -> str:
        """The training caption of one item; raises :class:`BadItemError` when it would be empty."""
        given = given.strip()
        template = self.template
        if self.needs_caption and not given:
            if self.fallback is None:
                raise BadItemError(source, Reason.NO_CAPTION, "no caption given and caption_fallback is null")
            template = self.fallback
        caption = render_caption(template, genre, given)
        if not caption:
            raise BadItemError(source, Reason.NO_CAPTION, f"template {template!r} renders an empty caption")
        return caption


def as_policy(captions: str | CaptionPolicy) -> CaptionPolicy:
    """Accept a bare template (the older API) or a policy."""
    return captions if isinstance(captions, CaptionPolicy) else CaptionPolicy(captions)
