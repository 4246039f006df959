"""Where real data lives: one resolution of a data set's folder for every caller.

A data set is looked up under a *data root*: the folder given by the caller
(``data_root=`` / ``--data-root``), else the one named by the environment
variable ``CECO_DATA_DIR``, else a ``shared/data`` folder beside the checkout.
Under the root, a data set may sit in its own sub-folder (``cityscapes/``,
``camvid/``, ``cifar/``) or the root may be that folder itself.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path

__all__ = ["ENV_VAR", "default_data_dir", "find_dataset_root"]

ENV_VAR = "CECO_DATA_DIR"


def default_data_dir() -> Path | None:
    """The data root to use when none is given, or ``None``.

    Order: the ``CECO_DATA_DIR`` environment variable; else a ``shared/data``
    folder beside the repository checkout (``<repo>/../shared/data``).

    Returns
    -------
    pathlib.Path or None
        An existing folder, or ``None`` when no data root is known. A
        ``CECO_DATA_DIR`` that names a missing folder gives ``None`` and a
        :class:`UserWarning` that says so.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        if path.is_dir():
            return path
        warnings.warn(f"{ENV_VAR}={env} is not a folder; it is ignored", UserWarning, stacklevel=2)
        return None
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def find_dataset_root(dataset: str, folder: str, marker: str, data_root=None, *, how_to_get: str = "") -> Path:
    """The folder holding a data set's files.

    Parameters
    ----------
    dataset : str
        Name used in messages (e.g. ``"camvid"``).
    folder : str
        The data set's usual sub-folder of a data root (e.g. ``"camvid"``).
    marker : str
        A path inside the data set's folder that proves it is there (e.g. ``"trainannot"``).
    data_root : path-like, optional
        The data set's own folder, or a data root holding ``folder/``; default
        :func:`default_data_dir`.
    how_to_get : str, optional
        One sentence on where to get the data, appended to the error.

    Returns
    -------
    pathlib.Path
        ``data_root`` or ``data_root/folder``, whichever holds ``marker``.

    Raises
    ------
    FileNotFoundError
        No data root is known, or neither candidate holds ``marker``; the message
        names the folders tried and ends with ``how_to_get``.
    """
    tail = f" {how_to_get}" if how_to_get else ""
    base = Path(data_root).expanduser() if data_root is not None else default_data_dir()
    if base is None:
        raise FileNotFoundError(
            f"dataset {dataset!r} needs real data: pass data_root (--data-root) or set {ENV_VAR} to a folder "
            f"holding {folder}/{marker}.{tail}"
        )
    for cand in (base, base / folder):
        if (cand / marker).exists():
            return cand
    raise FileNotFoundError(
        f"data root {str(base)!r} for dataset {dataset!r} holds neither {marker} nor {folder}/{marker}.{tail}"
    )
