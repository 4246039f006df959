"""t-SNE of pixel features, computed once and cached atomically (lesson 5).

t-SNE itself is :class:`sklearn.manifold.TSNE`. What this module adds is what a
lesson needs around it: a class-balanced subsample of the pixels
(:func:`ceco_lite.sampling.sample_per_class`, so rare classes are visible at all),
a content-addressed on-disk cache (the key hashes the features, the labels and
every parameter; files are written atomically with
:func:`ceco_lite.fileio.atomic_savez`, so an interrupted run never leaves a
half-written cache, and a damaged cache file is recomputed and overwritten), and a
helper that embeds several feature sets (runs x epochs) so that a widget can switch
between them instantly.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import torch
from sklearn.manifold import TSNE
from tqdm.auto import tqdm

from .fileio import CorruptFileError, atomic_savez, load_npz
from .sampling import sample_per_class
from .validation import (
    IGNORE_INDEX,
    check_bool,
    check_choice,
    check_ignore_index,
    check_int,
    check_positive,
    check_seed,
)

__all__ = ["tsne_embedding", "cached_tsne", "tsne_many"]

#: Version of the cache format and of the subsampling (part of every cache key).
_CACHE_VERSION = 2
_CACHE_KEYS = ("embedding", "labels", "indices")


def _as_numpy(x, name: str, kind: str) -> np.ndarray:
    """``x`` (tensor, array or sequence) as a numpy array of real (``kind="f"``) or integer (``"i"``) numbers."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu")
        if x.is_floating_point():
            x = x.float()
        x = x.numpy()
    x = np.asarray(x)
    ok = "biuf" if kind == "f" else "biu"
    if x.dtype.kind not in ok:
        what = "real numbers" if kind == "f" else "integer labels"
        raise TypeError(f"{name} must hold {what}, got dtype {x.dtype}")
    return x


def _flatten(features, labels) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(N, d)`` float32 features and ``(N,)`` int64 labels."""
    f = _as_numpy(features, "features", "f")
    y = _as_numpy(labels, "labels", "i")
    if f.ndim == 4:  # (B, d, H, W) with labels (B, H, W)
        if y.ndim != 3 or y.shape != (f.shape[0],) + f.shape[2:]:
            raise ValueError(
                "for (B, d, H, W) features, labels must be (B, H, W); got "
                f"{f.shape} and {y.shape}"
            )
        f = np.moveaxis(f, 1, -1).reshape(-1, f.shape[1])
        y = y.reshape(-1)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, d) or (B, d, H, W), got shape {f.shape}")
    if y.shape != (f.shape[0],):
        raise ValueError(f"labels must have shape ({f.shape[0]},), got {y.shape}")
    return np.ascontiguousarray(f, dtype=np.float32), y.astype(np.int64)


def tsne_embedding(
    features,
    *,
    perplexity: float = 30.0,
    max_iter: int = 500,
    seed: int = 0,
    init: str = "pca",
) -> np.ndarray:
    """2-D t-SNE of ``(N, d)`` features with :class:`sklearn.manifold.TSNE`.

    Parameters
    ----------
    features : array-like or torch.Tensor
        ``(N, d)`` features, N >= 5.
    perplexity : float, default 30
        Clipped to ``(N - 1) / 3`` for small N (sklearn requires perplexity < N).
    max_iter : int, default 500
        Optimisation steps (sklearn's minimum is 250).
    seed : int, default 0
        ``random_state`` (results are deterministic for a given seed).
    init : {"pca", "random"}, default "pca"

    Returns
    -------
    numpy.ndarray
        ``(N, 2)`` float32 embedding.

    Raises
    ------
    TypeError, ValueError
        If the features are not 2-D, there are fewer than 5 samples, or an
        argument is out of its range (named in the message).
    """
    perplexity = check_positive(perplexity, "perplexity")
    max_iter = check_int(max_iter, "max_iter", minimum=1)
    seed = check_seed(seed)
    check_choice(init, "init", ("pca", "random"))
    f = _as_numpy(features, "features", "f").astype(np.float32)
    if f.ndim != 2:
        raise ValueError(f"features must be (N, d), got shape {f.shape}")
    if f.shape[0] < 5:
        raise ValueError(f"t-SNE needs at least 5 samples, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError("features contain non-finite values (NaN/inf)")
    perp = float(min(perplexity, max(1.0, (f.shape[0] - 1) / 3.0)))
    tsne = TSNE(
        n_components=2,
        perplexity=perp,
        max_iter=max(250, max_iter),
        init=init,
        random_state=seed,
        learning_rate="auto",
    )
    return tsne.fit_transform(f).astype(np.float32)


def _cache_key(f: np.ndarray, y: np.ndarray, params: dict) -> str:
    h = hashlib.sha1()
    h.update(np.ascontiguousarray(f).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    h.update(str(f.shape).encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    return h.hexdigest()[:20]


def cached_tsne(
    features,
    labels,
    *,
    cache_dir: str | os.PathLike | None = None,
    max_per_class: int = 150,
    ignore_index: int | None = IGNORE_INDEX,
    perplexity: float = 30.0,
    max_iter: int = 500,
    seed: int = 0,
) -> dict:
    """Class-balanced t-SNE of pixel features, cached on disk.

    Subsamples at most ``max_per_class`` pixels of every class
    (:func:`ceco_lite.sampling.sample_per_class` with a generator seeded by
    ``seed``), embeds them with :func:`tsne_embedding` and stores ``embedding``,
    ``labels`` and ``indices`` in ``cache_dir/tsne-<key>.npz`` (written atomically,
    :func:`ceco_lite.fileio.atomic_savez`). A second call with the same features,
    labels and parameters reads the file instead of recomputing; a file that
    cannot be read back (truncated, empty, not an ``.npz``) is recomputed and
    overwritten.

    Parameters
    ----------
    features : array-like or torch.Tensor
        ``(N, d)`` pixel features, or ``(B, d, H, W)`` feature maps.
    labels : array-like or torch.Tensor
        ``(N,)`` labels, or ``(B, H, W)`` masks (ignore index dropped).
    cache_dir : path-like, optional
        Folder of the cache; ``None`` computes without caching.
    max_per_class : int, default 150
        Cap per class (``>= 1``).
    ignore_index : int or None, default 255
        Label of pixels that are dropped (``None``: none).
    perplexity, max_iter, seed
        See :func:`tsne_embedding`; ``seed`` also seeds the subsampling.

    Returns
    -------
    dict
        ``embedding`` ``(n, 2)`` float32, ``labels`` ``(n,)`` int64, ``indices``
        ``(n,)`` sorted int64 indices into the flattened input, ``cached`` (bool: read from disk),
        ``path`` (str or None).

    Raises
    ------
    ValueError
        On shape mismatches, or when fewer than 5 labelled samples remain.
    """
    f, y = _flatten(features, labels)
    max_per_class = check_int(max_per_class, "max_per_class", minimum=1)
    ignore_index = check_ignore_index(ignore_index)
    seed = check_seed(seed)
    params = dict(max_per_class=max_per_class, ignore_index=ignore_index, perplexity=check_positive(perplexity, "perplexity"),
                  max_iter=check_int(max_iter, "max_iter", minimum=1), seed=seed, version=_CACHE_VERSION)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"tsne-{_cache_key(f, y, params)}.npz"
        if path.is_file():
            try:
                data = load_npz(path, _CACHE_KEYS)
            except CorruptFileError:
                pass  # damaged cache file: recompute and overwrite it below
            else:
                return dict(data, cached=True, path=str(path))
    gen = torch.Generator().manual_seed(seed)
    idx = sample_per_class(y, max_per_class, ignore_index=ignore_index, generator=gen).numpy()
    idx = np.sort(idx)
    if idx.size < 5:
        raise ValueError(f"t-SNE needs at least 5 labelled samples, got {idx.size}")
    emb = tsne_embedding(f[idx], perplexity=perplexity, max_iter=max_iter, seed=seed)
    out = dict(embedding=emb, labels=y[idx], indices=idx)
    if path is not None:
        atomic_savez(path, **out)
    return dict(out, cached=False, path=None if path is None else str(path))


def tsne_many(
    feature_sets: dict,
    *,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = False,
    **kwargs,
) -> dict:
    """Embed several feature sets (e.g. ``{(run, epoch): (features, labels)}``).

    Each entry goes through :func:`cached_tsne` (same keyword arguments), so every
    embedding is computed once; a widget then switches between the returned
    embeddings without recomputing.

    Parameters
    ----------
    feature_sets : dict
        Maps any hashable key to a ``(features, labels)`` pair.
    cache_dir : path-like, optional
        Cache folder shared by all entries.
    progress : bool, default False
        Show a :mod:`tqdm` progress bar.
    **kwargs
        Passed to :func:`cached_tsne`.

    Returns
    -------
    dict
        The same keys, each mapped to the dict of :func:`cached_tsne`.
    """
    items = list(feature_sets.items())
    if check_bool(progress, "progress"):
        items = tqdm(items, desc="t-SNE")
    return {key: cached_tsne(f, y, cache_dir=cache_dir, **kwargs) for key, (f, y) in items}
