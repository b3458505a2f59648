"""The toy AudioLDM: a small AudioLDM trained offline on five genres, so that LoRA has something to adapt.

A random tiny model (:mod:`audioldm_demo.tiny`) proves that the code runs; this one proves that it learns. The
build (``audioldm-lora build-toy-base``, a few minutes on two CPU cores, cached) trains

- the VAE to reconstruct the AudioLDM log-mels of genres A..E of its world (five traditions of a real-music
  catalogue for ``make demo``; the procedural :data:`audioldm_demo.toy_settings.BASE_GENRES` otherwise), and sets its
  ``scaling_factor`` to 1 / std of its latents;
- the UNet on the same clips for text-conditioned denoising with AudioLDM's exact conditioning (L2-normalised CLAP
  ``text_embeds`` as ``class_labels``, captions dropped to "" so that classifier-free guidance works).

The tokenizer and CLAP text encoder stay small, random and frozen (seeded), and the vocoder is Griffin-Lim
(:class:`audioldm_demo.griffin_lim_vocoder.GriffinLimVocoder`). Genre F (the catalogue's held-out tradition, or
:data:`audioldm_demo.toy_settings.HELD_OUT_GENRE`) is never seen: ``configs/demo.yaml``
(``configs/demo_synthetic.yaml``) teaches it with LoRA. The result is a normal diffusers AudioLDM directory that
:func:`lightning_modules.backbone.load_backbone` loads, plus ``toy_base.json`` (the recipe and what the build
measured), which is the cache key: :func:`ensure_toy_base` rebuilds only when the recipe differs.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import diffusers
import numpy as np
import torch
from diffusers import DDPMScheduler

from audioldm_demo.griffin_lim_vocoder import GriffinLimVocoder
from audioldm_demo.tiny import MODEL_INDEX, build_scheduler, build_text_encoder, build_tokenizer, build_unet, build_vae
from audioldm_demo.toy_settings import ToyRecipe
from audioldm_demo.toy_world import CatalogueWorld, SyntheticWorld, ToyWorld, catalogue_digest
from audioldm_demo.toy_training import Progress, encode_posteriors, latent_scaling_factor, train_unet, train_vae
from datamodules.atomic_files import staged_directory
from lightning_modules.audioldm import encode_text

log = logging.getLogger(__name__)

RECIPE_FILE = "toy_base.json"


class ToyBaseError(RuntimeError):
    """The toy base directory cannot be used or replaced; the message says why and what to do."""


def read_recipe(directory: str | Path) -> ToyRecipe | None:
    """The recipe a toy base directory was built with, or None when it is not a (complete) toy base."""
    path = Path(directory) / RECIPE_FILE
    if not path.is_file():
        return None
    try:
        return ToyRecipe.from_json(json.loads(path.read_text(encoding="utf-8"))["recipe"])
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def ensure_toy_base(directory: str | Path, recipe: ToyRecipe = ToyRecipe(), progress: Progress | None = None) -> Path:
    """Build the toy base into ``directory`` unless it already holds one built with ``recipe`` (the cache).

    A toy base built with another recipe is replaced; any other existing directory is left alone.

    Raises:
        ToyBaseError: ``directory`` exists and is not a toy base.
    """
    directory = Path(directory).expanduser()
    if directory.exists():
        found = read_recipe(directory)
        if found == recipe:
            log.info("Toy AudioLDM in %s is up to date (recipe version %d, seed %d).", directory, recipe.version, recipe.seed)
            return directory
        if found is None:
            raise ToyBaseError(
                f"{directory} exists but holds no {RECIPE_FILE}: it is not a toy AudioLDM this tool built, so it is not "
                "replaced. Choose another directory or remove it."
            )
        log.info("Toy AudioLDM in %s was built with another recipe; rebuilding.", directory)
    return build_toy_base(directory, recipe, overwrite=True, progress=progress)


def toy_world(recipe: ToyRecipe) -> ToyWorld:
    """The world the recipe trains on: its catalogue (checked against the digest it was keyed with) or the
    procedural genres.

    Raises:
        ToyBaseError: the catalogue has changed since the recipe was made.
    """
    if recipe.catalogue is None:
        return SyntheticWorld(recipe.caption_template)
    found = catalogue_digest(recipe.catalogue)
    if recipe.catalogue_digest and found != recipe.catalogue_digest:
        raise ToyBaseError(f"The catalogue {recipe.catalogue} has changed since this recipe was made (digest {found}, "
                           f"not {recipe.catalogue_digest}); build the toy base with --catalogue {recipe.catalogue}.")
    return CatalogueWorld(recipe.catalogue)


def recipe_on_catalogue(recipe: ToyRecipe, root: str | Path) -> ToyRecipe:
    """``recipe`` over a real-music catalogue: its traditions but the held-out one as genres A..E, the held-out one
    as F, captions as the catalogue writes them, and the catalogue's digest in the cache key."""
    world = CatalogueWorld(root)
    return recipe.with_overrides(genres=tuple(g for g in world.genres if g != world.held_out), held_out=world.held_out,
                                 catalogue=str(root), catalogue_digest=catalogue_digest(root),
                                 caption_template="{caption}")


def training_data(recipe: ToyRecipe) -> tuple[torch.Tensor, list[str]]:
    """The UNet's training set: log-mels [N, frames, 64] of genres A..E, and their captions."""
    world = toy_world(recipe)
    mels = world.training_log_mels(recipe.genres, recipe.clips_per_genre, recipe.duration, recipe.seed)
    captions = [world.caption(genre) for genre in recipe.genres for _ in range(recipe.clips_per_genre)]
    return mels, captions


def pitch_shifted_data(recipe: ToyRecipe) -> torch.Tensor:
    """The VAE's extra training set: genres A..E moved by random pitch shifts within +-``vae_pitch_shift``.

    An AudioLDM VAE is a general audio codec (the real one saw far more audio than any genre). Trained on A..E in
    their own registers only, the toy VAE cannot code a melody in another register, so the held-out genre would be
    out of reach of any UNet; the shifted clips (still only A..E timbres) make it a codec of the register range.
    """
    return toy_world(recipe).vae_log_mels(recipe.genres, recipe.clips_per_genre, recipe.duration, recipe.seed,
                                          recipe.vae_pitch_shift)


def train_toy_components(recipe: ToyRecipe, progress: Progress | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build and train every component; returns ``({name: component}, measurements)``."""
    timings: dict[str, float] = {}
    start = time.monotonic()
    generator = torch.Generator().manual_seed(recipe.seed)
    tokenizer = build_tokenizer()
    torch.manual_seed(recipe.text_seed)
    text_encoder = build_text_encoder(
        len(tokenizer), initializer_factor=recipe.text_initializer_factor, projection_dim=recipe.text_projection_dim
    ).eval().requires_grad_(False)  # fixed and random: encode_text builds a graph only for trainable encoders
    mels, captions = training_data(recipe)
    vae_mels = torch.cat([mels, pitch_shifted_data(recipe)]) if recipe.vae_pitch_shift else mels
    timings["data_s"] = time.monotonic() - start

    torch.manual_seed(recipe.seed + 1)
    vae = build_vae(recipe.vae_channels, recipe.latent_channels)
    train_vae(vae, vae_mels, recipe.vae_steps, recipe.vae_batch_size, recipe.vae_learning_rate, recipe.kl_weight,
              generator, recipe.vae_crop_frames, progress)
    posteriors = encode_posteriors(vae, mels)
    scaling_factor = latent_scaling_factor(posteriors, generator)
    vae.register_to_config(scaling_factor=scaling_factor)
    with torch.no_grad():
        reconstruction_l1 = float((vae.decode(posteriors[:64, : recipe.latent_channels]).sample.squeeze(1) - mels[:64]).abs().mean())
    timings["vae_s"] = time.monotonic() - start - sum(timings.values())

    scheduler = build_scheduler()
    text_embeds = encode_text(text_encoder, tokenizer, captions)
    empty_embed = encode_text(text_encoder, tokenizer, [""])[0]
    torch.manual_seed(recipe.seed + 2)
    unet = build_unet(recipe.unet_channels, recipe.latent_channels, recipe.text_projection_dim)
    with torch.no_grad():
        # The text embedding enters as a small additive term next to the timestep embedding; a larger initial
        # projection lets a short training run learn to use it (the architecture and conditioning are unchanged).
        unet.class_embedding.weight.mul_(recipe.class_embedding_init_scale)
    unet = train_unet(
        unet,
        DDPMScheduler.from_config(scheduler.config),
        posteriors,
        text_embeds,
        empty_embed,
        scaling_factor,
        recipe.unet_steps,
        recipe.unet_batch_size,
        recipe.unet_learning_rate,
        recipe.caption_dropout,
        generator,
        recipe.unet_ema_decay,
        recipe.unet_snr_gamma,
        progress,
    )
    timings["unet_s"] = time.monotonic() - start - sum(timings.values())
    components = {"tokenizer": tokenizer, "text_encoder": text_encoder, "vae": vae, "unet": unet,
                  "vocoder": GriffinLimVocoder(), "scheduler": scheduler}
    measurements = {"scaling_factor": scaling_factor, "vae_reconstruction_l1": reconstruction_l1,
                    "training_clips": len(mels), **{k: round(v, 1) for k, v in timings.items()}}
    return components, measurements


def model_index() -> dict[str, Any]:
    """``model_index.json`` of the toy: the tiny model's, with the Griffin-Lim vocoder class (see lightning_modules/audioldm.py, PROJECT_VOCODERS)."""
    return {**MODEL_INDEX, "vocoder": ["lightning_modules", GriffinLimVocoder.__name__],
            "_diffusers_version": diffusers.__version__}


def build_toy_base(
    directory: str | Path, recipe: ToyRecipe = ToyRecipe(), overwrite: bool = False, progress: Progress | None = None
) -> Path:
    """Train the toy base and write it to ``directory`` atomically (built aside, then renamed into place)."""
    directory = Path(directory).expanduser()
    if directory.exists() and not overwrite:
        raise FileExistsError(f"{directory} already exists; pass overwrite=True (--overwrite) to rebuild it.")
    start = time.monotonic()
    components, measurements = train_toy_components(recipe, progress)
    with staged_directory(directory, mode="folder", overwrite=overwrite) as staging:
        for name, component in components.items():
            component.save_pretrained(staging / name)
        (staging / "model_index.json").write_text(json.dumps(model_index(), indent=2) + "\n")
        measurements["build_s"] = round(time.monotonic() - start, 1)
        record = {"recipe": recipe.to_json(), "measured": measurements}
        (staging / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    log.info("Built the toy AudioLDM in %s in %.0f s.", directory, measurements["build_s"])
    return directory
