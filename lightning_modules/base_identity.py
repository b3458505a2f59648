"""What identifies the base model an adapter was trained on, recorded in ``adapter_info.json`` and checked on load.

An adapter only means something on the base it was trained on: on a base with the same architecture and other
weights (another checkpoint of the family, a fine-tune, a merged model) it loads without a shape error and changes
the output in ways nobody measured. The tensor-shape check of :mod:`lightning_modules.adapters` cannot see that, so
an adapter records:

- ``base_model``: the base as the run was given it (a hub id, or a local folder as typed);
- ``base_model_path``: for a local folder, its absolute path, so tools run from another folder still find it;
- ``base_commit``: for a hub id, the commit of the repository that was loaded (from the Hugging Face cache);
- ``base_fingerprint``: a hash of the base weights of every adapter site (:func:`base_fingerprint`).

Why not :func:`datamodules.latent_cache.fingerprint_module` (an exact hash of a state dict): the base weights are
held in the run's ``frozen_dtype`` and, once adapters are attached, under peft's ``base_layer`` names beside the LoRA
tensors; the adapter's fingerprint must come out the same whether it is computed in training (bf16, wrapped) or
in a tool (float32, plain). So names are normalised, LoRA tensors skipped and values rounded to bfloat16.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported where weights are hashed: the tools' --help must not import it
    import torch

FINGERPRINT_METHOD = "bf16-strided-blake2b-v1"
"""The method of :func:`base_fingerprint`; an adapter recorded with another method is not compared."""
SAMPLES_PER_TENSOR = 4096
"""Values hashed per tensor, evenly strided over it (every value of smaller tensors): a changed checkpoint changes
far more than that, and the hash of a full-size AudioLDM takes well under a second."""
_PEFT_NAMES = re.compile(r"^base_model\.model\.|\.base_layer(?=\.)")


def _base_weights(module: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    """The floating-point base weights of ``module``, named as in the plain model (LoRA tensors left out)."""
    weights = []
    for name, tensor in module.state_dict().items():
        if "lora_" in name or not tensor.is_floating_point():
            continue
        weights.append((_PEFT_NAMES.sub("", name), tensor))
    return sorted(weights, key=lambda pair: pair[0])


def base_fingerprint(sites: dict[str, torch.nn.Module]) -> dict[str, str]:
    """``{"method": ..., "value": hex}``: a hash of the base weights of ``sites`` (adapter sites by name).

    Equal for the same base loaded in any dtype, with or without adapters attached; different for another
    checkpoint of the same architecture.
    """
    import torch

    digest = hashlib.blake2b(digest_size=16)
    for site in sorted(sites):
        for name, tensor in _base_weights(sites[site]):
            flat = tensor.detach().reshape(-1)
            step = max(1, flat.numel() // SAMPLES_PER_TENSOR)
            sample = flat[::step][:SAMPLES_PER_TENSOR].to(device="cpu", dtype=torch.bfloat16).contiguous()
            digest.update(f"{site}/{name}|{tuple(tensor.shape)}".encode())
            digest.update(sample.view(torch.int16).numpy().tobytes())
    return {"method": FINGERPRINT_METHOD, "value": digest.hexdigest()}


def hub_commit(repo_id: str, revision: str | None) -> str | None:
    """The commit of ``repo_id`` (at ``revision``) that the local Hugging Face cache holds, i.e. the one loaded;
    None when the cache has no snapshot of it."""
    from huggingface_hub import try_to_load_from_cache

    try:
        path = try_to_load_from_cache(repo_id, "model_index.json", revision=revision)
    except Exception:  # an id the cache cannot even parse: there is no commit to record
        return None
    return Path(path).parent.name if isinstance(path, str) and "snapshots" in Path(path).parts else None


def base_reference(pretrained_model: str, revision: str | None, fingerprint: dict[str, str]) -> dict[str, Any]:
    """The ``adapter_info.json`` fields that identify the base (module docstring): a local folder's absolute path,
    or a hub id's commit."""
    local = Path(pretrained_model).expanduser()
    is_local = local.is_dir()
    return {
        "base_model": pretrained_model,
        "base_model_path": os.path.abspath(local) if is_local else None,
        "revision": revision,
        "base_commit": None if is_local else hub_commit(pretrained_model, revision),
        "base_fingerprint": fingerprint,
    }


def recorded_base(info: dict[str, Any]) -> str | None:
    """The base an adapter names, usable from the current folder: ``base_model`` when it is a hub id or exists
    here, else the absolute ``base_model_path`` recorded at training time when that exists, else ``base_model``
    as recorded (whose load then fails with :func:`missing_base_message`)."""
    given = info.get("base_model")
    if not given:
        return None
    path = info.get("base_model_path")
    if path and not Path(str(given)).expanduser().is_dir() and Path(path).is_dir():
        return str(path)
    return str(given)


def fingerprint_mismatch(info: dict[str, Any], current: dict[str, str]) -> bool:
    """Whether ``info`` records a base fingerprint of the same method that differs from ``current``."""
    recorded = info.get("base_fingerprint")
    if not isinstance(recorded, dict) or recorded.get("method") != current.get("method"):
        return False
    return recorded.get("value") != current.get("value")
