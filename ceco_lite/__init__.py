"""ceco-lite: neural collapse in imbalanced semantic segmentation.

The public API is imported lazily (``ceco_lite.simplex_etf`` loads only
:mod:`ceco_lite.etf`), so ``import ceco_lite`` stays fast and a user who only
needs the maths never imports plotting or widget code.

Maths layout follows the CeCo paper (Zhong et al., CVPR 2023): a classifier or a
simplex ETF is ``W`` of shape ``(d, K)`` -- one column per class (Eq. 1). The
conventions, errata and definitions the code relies on are in
``docs/conventions.md``.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> submodule that defines it (each helper adds its own rows)
_EXPORTS = {
    # simplex ETF, Lemma 1 (ceco_lite/etf.py)
    "simplex_etf": "etf",
    "check_simplex_etf": "etf",
    "etf_gram": "etf",
    "max_pairwise_cosine": "etf",
    "lemma1_bound": "etf",
    "spread_unit_vectors": "etf",
    # class centres, Eq. 3 (ceco_lite/centers.py)
    "class_centers": "centers",
    "class_sums": "centers",
    "align_features_and_labels": "centers",
    # CeCo losses, Eq. 4-5 (ceco_lite/ceco.py)
    "CenterCollapseLoss": "ceco",
    "CompiledCenterLoss": "ceco",
    "ReleasedCenterCollapseLoss": "ceco",
    # closed-form gradients, Eq. 6-9 (ceco_lite/gradients.py)
    "ceco_gradients": "gradients",
    "classifier_pairwise_distances": "gradients",
    "mean_pairwise_cosine": "gradients",
    # neural-collapse statistics (ceco_lite/nc.py)
    "nc_metrics": "nc",
    "NCAccumulator": "nc",
    "delta_inter": "nc",
    "delta_intra": "nc",
    # In2NeCT (ceco_lite/in2nect.py)
    "InterClassLoss": "in2nect",
    "IntraClassLoss": "in2nect",
    "In2NeCTLoss": "in2nect",
    # class-balanced subsampling (ceco_lite/sampling.py)
    "sample_per_class": "sampling",
    # IDDC (ceco_lite/iddc.py)
    "weibull_imbalance_regularizer": "iddc",
    "uniform_prior_regularizer": "iddc",
    "weibull_density": "iddc",
    # IDDC clustering demo (ceco_lite/clustering.py), cached t-SNE (ceco_lite/tsne.py)
    "train_clustering_head": "clustering",
    "imbalanced_blobs": "clustering",
    "cached_tsne": "tsne",
    "tsne_embedding": "tsne",
    # models with exposed pre-classifier features (ceco_lite/models/)
    "build_model": "models",
    # CeCo on any model: features captured by a forward hook (ceco_lite/feature_hooks.py)
    "FeatureTap": "feature_hooks",
    "attach_features": "feature_hooks",
    "main_output": "feature_hooks",
    "unwrap_model": "feature_hooks",
    # Yang et al.'s dot-regression loss for a fixed ETF (ceco_lite/dot_regression.py)
    "DotRegressionLoss": "dot_regression",
    "dot_regression_class_lengths": "dot_regression",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'ceco_lite' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
