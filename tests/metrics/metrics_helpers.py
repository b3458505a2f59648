"""Helpers of the metrics tests: independent float64 reference formulas, a tiny random CLAP, audio folders, and
the DDP worker (a module-level function, so that spawned processes can import it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

# ---------------------------------------------------------------- reference formulas (docs/metrics.md), float64


def reference_median_distance(y: np.ndarray) -> float:
    """Lower median of all pairwise Euclidean distances, by explicit pairs in float64."""
    y = np.asarray(y, dtype=np.float64)
    i, j = np.triu_indices(len(y), k=1)
    distances = np.sqrt(((y[i] - y[j]) ** 2).sum(axis=1))
    return float(np.sort(distances)[(distances.size - 1) // 2])


def reference_kad(x: np.ndarray, y: np.ndarray, bandwidth: float | None = None) -> float:
    """100 * unbiased MMD^2 with the RBF kernel, gamma = 1 / (2 s^2 + 1e-8), s = median distance within y."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    s = reference_median_distance(y) if bandwidth is None else bandwidth
    gamma = 1.0 / (2.0 * s * s + 1e-8)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        squared = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=-1)
        return np.exp(-gamma * squared)

    m, n = len(x), len(y)
    k_xx, k_yy = kernel(x, x), kernel(y, y)
    within_x = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    within_y = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(100.0 * (within_x + within_y - 2.0 * kernel(x, y).mean()))


def reference_fad(x: np.ndarray, y: np.ndarray) -> float:
    """||mu_x - mu_y||^2 + tr Sx + tr Sy - 2 sum sqrt(max(eig(Sx Sy), 0)), covariances with ddof 1."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    mu_x, mu_y = x.mean(axis=0), y.mean(axis=0)
    cov_x = (x - mu_x).T @ (x - mu_x) / (len(x) - 1)
    cov_y = (y - mu_y).T @ (y - mu_y) / (len(y) - 1)
    eigenvalues = np.linalg.eigvals(cov_x @ cov_y)
    trace_sqrt = np.sqrt(np.clip(eigenvalues.real, 0.0, None)).sum()
    return float(((mu_x - mu_y) ** 2).sum() + np.trace(cov_x) + np.trace(cov_y) - 2.0 * trace_sqrt)


# ---------------------------------------------------------------- tiny random CLAP, saved like a hub checkpoint

PROMPTS = ["hip hop music with boom bap drums", "rock guitar riff", "jazz piano trio", "calm ambient pads"]


def build_tiny_clap(directory: Path, fusion: bool = False, seed: int = 0) -> Path:
    """A random ``ClapModel`` (16-d projections), a ``ClapFeatureExtractor`` with a 1 s window and a byte-level BPE
    ``RobertaTokenizerFast``, saved with ``save_pretrained`` so ``ClapProcessor``/``ClapModel`` load them offline."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    bpe.train_from_iterator(PROMPTS * 4, trainer)
    bpe.post_processor = processors.RobertaProcessing(("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>")))
    tokenizer = RobertaTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=64,
    )
    audio_config = dict(
        spec_size=128, window_size=4, depths=[1, 1], num_attention_heads=[1, 2], patch_embeds_hidden_size=8,
        hidden_size=16, projection_dim=16, num_classes=4, enable_fusion=fusion,
    )
    if fusion:
        audio_config["fusion_type"] = "aff_2d"
    config = ClapConfig(
        text_config=dict(
            vocab_size=bpe.get_vocab_size(), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
            intermediate_size=37, max_position_embeddings=80, projection_dim=16, pad_token_id=1,
        ),
        audio_config=audio_config,
        projection_dim=16,
    )
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    extractor = ClapFeatureExtractor(truncation="fusion" if fusion else "rand_trunc", max_length_s=1)
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    extractor.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


# ---------------------------------------------------------------- audio folders


def tone(frequency: float, seconds: float, sample_rate: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    """A sine with white noise, peak about 0.5."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    signal = 0.4 * np.sin(2 * np.pi * frequency * t) + noise * rng.standard_normal(t.size)
    return (signal / max(1e-9, np.abs(signal).max()) * 0.5).astype(np.float32)


def write_genre_folder(root: Path, genres: dict[str, int], base_frequency: float, noise: float, seed: int,
                       sample_rate: int = 22_050, seconds: float = 0.5) -> list[Path]:
    """``root/<genre>/<i>.wav`` for each genre and count; different genres get different pitches."""
    rng = np.random.default_rng(seed)
    paths = []
    for g, (genre, count) in enumerate(sorted(genres.items())):
        for i in range(count):
            path = root / genre / f"{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, tone(base_frequency * (1 + g) + 37 * i, seconds, sample_rate, noise, rng), sample_rate)
            paths.append(path)
    return paths


# ---------------------------------------------------------------- DDP worker


def ddp_worker(rank: int, world_size: int, port: int, shards: dict, out_dir: str) -> None:
    """Update the three metrics with this rank's shard under gloo, compute (which syncs), save the results."""
    import torch.distributed as dist

    from metrics import CLAPScore, FrechetAudioDistance, KernelAudioDistance

    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    try:
        kad, fad, clap = KernelAudioDistance(), FrechetAudioDistance(), CLAPScore()
        for real in shards["real"][rank]:
            kad.update(real, real=True)
            fad.update(real, real=True)
        for fake in shards["fake"][rank]:
            kad.update(fake, real=False)
            fad.update(fake, real=False)
        for text, audio in shards["pairs"][rank]:
            clap.update(text, audio)
        result = {"kad": kad.compute(), "bandwidth": kad.last_bandwidth, "fad": fad.compute(), "clap": clap.compute()}
        torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()
