"""Upload a folder (an adapter with its model card, or a merged model) to the Hugging Face Hub."""

from __future__ import annotations

from pathlib import Path

import huggingface_hub


class HubUploadError(RuntimeError):
    """The upload failed; the message names the repository and the cause (login, permissions, network)."""


def push_folder(
    folder: str | Path,
    repo_id: str,
    *,
    private: bool = False,
    token: str | None = None,
    commit_message: str = "Upload with audioldm-lora",
) -> str:
    """Create ``repo_id`` (a model repository) if needed and upload every file of ``folder``; returns the commit URL.

    The token comes from ``token``, ``HF_TOKEN`` or ``huggingface-cli login``, as huggingface_hub resolves it.

    Raises:
        HubUploadError: the repository cannot be created or the upload fails.
    """
    api = huggingface_hub.HfApi(token=token)
    try:
        api.create_repo(repo_id=repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(
            folder_path=str(folder), repo_id=repo_id, repo_type="model", commit_message=commit_message
        )
    except Exception as error:  # HfHubHTTPError, connection and authentication errors all end the same way
        raise HubUploadError(
            f"Uploading {folder} to https://huggingface.co/{repo_id} failed: {error}. Log in with "
            "`huggingface-cli login` (or set HF_TOKEN) with write access, and check the network."
        ) from error
    return str(getattr(commit, "commit_url", commit))
