"""Where real data lives: a user-given root, or the ``CECO_DATA_DIR`` environment variable."""
from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CECO_DATA_DIR"


def default_data_dir() -> Path | None:
    """Return the data root to use when none is given, or ``None``.

    Order: the ``CECO_DATA_DIR`` environment variable; else a ``shared/data``
    folder beside the repository checkout (``<repo>/../shared/data``, where this
    project's developers and CI keep real test data). The folder is expected to
    hold ``cityscapes/`` (official layout) and/or ``cifar/`` (the python-pickle
    layout of ``torchvision.datasets.CIFAR10/100``).

    Returns
    -------
    pathlib.Path or None
        An existing directory, or ``None`` when no data root is known.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        path = Path(env).expanduser()
        return path if path.is_dir() else None
    candidate = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None
