"""Refuse to resume a checkpoint into a run with other settings, naming each difference.

Lightning restores whatever matches by name: a checkpoint of a rank-4 adapter fails only by chance (a shape error),
and one written with another batch size, data source, caption dropout or seed resumes without a word into a run
that is neither the old one continued nor a new one. The settings below decide what is trained; a resume must keep
them. Everything else may change on resume: ``max_steps``, workers, validation and sampling settings, logging.
Optimizer settings (learning rate, schedule, AdamW's) may change too, with a warning, since continuing a finished
run under a new schedule is a legitimate request; the result then is not an uninterrupted run's.

Lightning stores the module's and the data module's constructor arguments in every checkpoint
(``hyper_parameters`` and ``datamodule_hyper_parameters``), so no extra record is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Settings that decide what is trained: a resume under another value is refused.
MODEL_IDENTITY = (
    "pretrained_model", "revision", "adapters", "caption_dropout", "snr_gamma", "noise_offset", "frozen_dtype",
    "prior_prompts",
    "prior_samples_per_prompt", "prior_loss_weight", "prior_seed", "prior_guidance_scale", "prior_target",
)
DATA_IDENTITY = (
    "root", "manifest", "hf_dataset", "hf_split", "hf_config", "shards", "val_shards", "latent_cache", "streaming",
    "genres", "duration", "batch_size", "val_fraction", "split_seed", "seed", "balance_genres", "caption_template",
    "caption_fallback", "shuffle_buffer", "cache_crops_per_file", "audio_column", "caption_column", "genre_column",
)
# Settings a resume may change, with a warning that the run is no longer an uninterrupted one.
MODEL_OPTIMIZER = ("learning_rate", "weight_decay", "adam_betas", "adam_epsilon", "lr_schedule", "warmup_steps")


class ResumeSettingsError(ValueError):
    """The checkpoint was written under other settings than this run's; the message lists them."""


def _plain(value: Any) -> Any:
    """Tuples as lists and mappings as dicts, so that a value read back from a checkpoint compares equal."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def differences(saved: Mapping[str, Any], current: Mapping[str, Any], keys: tuple[str, ...], prefix: str) -> list[str]:
    """``<prefix><key>: <saved> in the checkpoint, <current> now`` for each key both record with other values."""
    found = []
    for key in keys:
        if key not in saved or key not in current or _plain(saved[key]) == _plain(current[key]):
            continue
        old, new = _plain(saved[key]), _plain(current[key])
        if isinstance(old, dict) and isinstance(new, dict):  # name the entry that differs (adapters.unet.rank)
            nested = sorted(set(old) | set(new))
            found += differences({k: old.get(k) for k in nested}, {k: new.get(k) for k in nested}, tuple(nested),
                                 f"{prefix}{key}.")
        else:
            found.append(f"{prefix}{key}: {saved[key]!r} in the checkpoint, {current[key]!r} now")
    return found


def check_resume_settings(checkpoint: Mapping[str, Any], model_hparams: Mapping[str, Any],
                          data_hparams: Mapping[str, Any] | None) -> list[str]:
    """Raise :class:`ResumeSettingsError` when a setting that decides training differs from the checkpoint's;
    return the optimizer settings that differ (the caller warns)."""
    saved_model = checkpoint.get("hyper_parameters") or {}
    saved_data = checkpoint.get("datamodule_hyper_parameters") or {}
    refused = differences(saved_model, model_hparams, MODEL_IDENTITY, "model.init_args.")
    if data_hparams is not None:
        refused += differences(saved_data, data_hparams, DATA_IDENTITY, "data.init_args.")
    if refused:
        raise ResumeSettingsError(
            "the checkpoint (--ckpt_path) was written under other settings than this run's:\n  "
            + "\n  ".join(refused)
            + "\nResume with the checkpoint's settings (the run's config.yaml beside its logs has them all), or "
            "start a new run without --ckpt_path."
        )
    return differences(saved_model, model_hparams, MODEL_OPTIMIZER, "model.init_args.")
