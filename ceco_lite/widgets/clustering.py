"""The cluster-size explorer of lesson 6: IDDC's Weibull regulariser against a uniform prior."""
from __future__ import annotations

from typing import Mapping, Sequence

import ipywidgets as W
import numpy as np

from ..clustering import PRIORS, imbalanced_blobs, train_clustering_head
from ..plotting.segmentation import cluster_sizes_figure, update_cluster_sizes

__all__ = ["ClusteringExplorer"]


_PRIOR_LABELS = {"weibull": "Weibull (IDDC)", "uniform": "uniform prior", "none": "no prior"}


class ClusteringExplorer:
    """Cluster sizes found with IDDC's Weibull regulariser vs a uniform prior.

    An imbalance slider regenerates the blobs (:func:`ceco_lite.clustering.imbalanced_blobs`)
    and retrains one clustering head per prior
    (:func:`ceco_lite.clustering.train_clustering_head`) on slider release; the
    figure shows the sorted cluster sizes beside the true sizes, the HTML line the
    matched accuracy, NMI, size distance and the number of empty clusters.

    Parameters
    ----------
    num_clusters : int, default 8
    imbalance_factor : float, default 30
        Initial slider value (the slider spans 1 ... 100 on a log scale).
    priors : sequence of str, default ("weibull", "uniform", "none")
    prior_weights : mapping, optional
        Weight per prior; defaults ``{"weibull": 0.5, "uniform": 1.0}``.
    n_max, steps, seed
        Passed to the library functions.
    """

    def __init__(self, *, num_clusters: int = 8, imbalance_factor: float = 30.0,
                 priors: Sequence[str] = ("weibull", "uniform", "none"),
                 prior_weights: Mapping[str, float] | None = None, n_max: int = 300,
                 steps: int = 200, seed: int = 0) -> None:
        for p in priors:
            if p not in PRIORS:
                raise ValueError(f"priors must be taken from {PRIORS}, got {p!r}")
        self.num_clusters = int(num_clusters)
        self.priors = tuple(priors)
        self.prior_weights = {"weibull": 0.5, "uniform": 1.0, "none": 0.0, **(prior_weights or {})}
        self.n_max, self.steps, self.seed = int(n_max), int(steps), int(seed)
        self.results: dict = {}
        self.imbalance = W.FloatLogSlider(value=float(imbalance_factor), base=10, min=0, max=2, step=0.05,
                                          description="imbalance", continuous_update=False,
                                          readout_format=".0f", style={"description_width": "initial"})
        self.status = W.HTML()
        names = [_PRIOR_LABELS[p] for p in self.priors]
        self.figure = cluster_sizes_figure(np.zeros(self.num_clusters),
                                           {n: np.zeros(self.num_clusters) for n in names})
        self.imbalance.observe(lambda change: self.update(imbalance_factor=change["new"]), names="value")
        self.widget = W.VBox([self.imbalance, self.figure, self.status])
        self.update(imbalance_factor=self.imbalance.value)

    def compute(self, imbalance_factor: float) -> dict:
        """Train one head per prior at this imbalance factor; returns ``{prior: ClusteringResult}``."""
        X, y, sizes = imbalanced_blobs(self.num_clusters, imbalance_factor, n_max=self.n_max, seed=self.seed)
        self.true_sizes = sizes
        return {p: train_clustering_head(X, self.num_clusters, prior=p, prior_weight=self.prior_weights[p],
                                         labels=y, steps=self.steps, seed=self.seed)
                for p in self.priors}

    def update(self, *, imbalance_factor: float | None = None) -> None:
        """Recompute for a new imbalance factor and redraw (the slider's callback)."""
        if imbalance_factor is None:
            imbalance_factor = self.imbalance.value
        self.results = self.compute(float(imbalance_factor))
        update_cluster_sizes(self.figure, self.true_sizes,
                             {_PRIOR_LABELS[p]: r.cluster_sizes for p, r in self.results.items()},
                             title=f"Cluster sizes, sorted (true imbalance factor {float(imbalance_factor):.0f})")
        rows = "".join(
            f"<tr><td>{_PRIOR_LABELS[p]}</td><td>{r.matched_accuracy:.3f}</td><td>{r.nmi:.3f}</td>"
            f"<td>{r.size_distance:.3f}</td><td>{r.num_empty}</td></tr>"
            for p, r in self.results.items())
        self.status.value = ("<table><tr><th>prior</th><th>matched acc.</th><th>NMI</th>"
                             "<th>size distance</th><th>empty clusters</th></tr>" + rows + "</table>")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
