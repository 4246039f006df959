"""The cluster-size explorer of lesson 6: IDDC's Weibull regulariser against a uniform prior."""
from __future__ import annotations

import html
from typing import Mapping, Sequence

import ipywidgets as W
import numpy as np

from ..clustering import PRIORS, imbalanced_blobs, train_clustering_head
from ..plotting.segmentation import cluster_sizes_figure, update_cluster_sizes
from ..validation import check_imbalance_factor, check_int
from ..verdicts import Verdict, compare
from ._busy import BusySign
from ._figure_view import FigureView

__all__ = ["ClusteringExplorer", "DEFAULT_IMBALANCE_FACTORS", "PRIOR_LABELS"]

#: The imbalance factors the slider offers (all precomputed when the widget is built).
DEFAULT_IMBALANCE_FACTORS = (1.0, 3.0, 10.0, 30.0, 100.0)
#: Display names of the priors.
PRIOR_LABELS = {"weibull": "Weibull (IDDC)", "uniform": "uniform prior", "none": "no prior"}

_CELL = "padding:2px 12px;text-align:right;font-variant-numeric:tabular-nums"
_HEAD = "padding:2px 12px;text-align:right;border-bottom:1px solid #999"


class ClusteringExplorer:
    """Cluster sizes found with IDDC's Weibull regulariser vs a uniform prior, one imbalance factor at a time.

    For every imbalance factor of the slider the blobs
    (:func:`ceco_lite.clustering.imbalanced_blobs`) are generated and one clustering head
    per prior is trained (:func:`ceco_lite.clustering.train_clustering_head`) **once, when
    the widget is built**; moving the slider only swaps the stored results into the figure
    (sorted cluster sizes beside the true sizes) and the table (matched accuracy, NMI, size
    distance, empty clusters). :meth:`update` with an imbalance factor that is not stored
    trains it then, with a busy sign.

    Parameters
    ----------
    num_clusters : int, default 8
    imbalance_factor : float, default 30
        Initial slider value; it is added to ``imbalance_factors`` when missing.
    imbalance_factors : sequence of float, default :data:`DEFAULT_IMBALANCE_FACTORS`
        The slider's values (each >= 1).
    priors : sequence of str, default ("weibull", "uniform", "none")
    prior_weights : mapping, optional
        Weight per prior; defaults ``{"weibull": 0.5, "uniform": 1.0}``.
    n_max : int, default 300
        Size of the largest blob.
    steps : int, default 100
        Optimisation steps per head.
    batch_size : int, default 128
        Points per step (all pairs of a batch enter IDDC's affinity terms).
    seed : int, default 0

    Raises
    ------
    ValueError
        An unknown prior, an imbalance factor below 1, or a count out of range.
    """

    def __init__(self, *, num_clusters: int = 8, imbalance_factor: float = 30.0,
                 imbalance_factors: Sequence[float] = DEFAULT_IMBALANCE_FACTORS,
                 priors: Sequence[str] = ("weibull", "uniform", "none"),
                 prior_weights: Mapping[str, float] | None = None, n_max: int = 300,
                 steps: int = 100, batch_size: int = 128, seed: int = 0) -> None:
        for p in priors:
            if p not in PRIORS:
                raise ValueError(f"priors must be taken from {PRIORS}, got {p!r}")
        self.num_clusters = check_int(num_clusters, "num_clusters", minimum=2)
        self.priors = tuple(priors)
        self.prior_weights = {"weibull": 0.5, "uniform": 1.0, "none": 0.0, **(prior_weights or {})}
        self.n_max = check_int(n_max, "n_max", minimum=1)
        self.steps = check_int(steps, "steps", minimum=1)
        self.batch_size = check_int(batch_size, "batch_size", minimum=2)
        self.seed = int(seed)
        start = check_imbalance_factor(imbalance_factor)
        values = sorted({check_imbalance_factor(v) for v in imbalance_factors} | {start})
        #: ``{imbalance factor: (true sizes, {prior: ClusteringResult})}``, filled by :meth:`compute`.
        self.cache: dict = {}
        for v in values:
            self.cache[v] = self.compute(v)
        self.imbalance = W.SelectionSlider(options=[(f"{v:g}", v) for v in values], value=start,
                                           description="imbalance factor", continuous_update=False,
                                           style={"description_width": "initial"},
                                           layout=W.Layout(width="420px"))
        self.sign = BusySign()
        self.status = W.HTML()
        self.shown = start
        sizes, results = self.cache[start]
        self.figure = cluster_sizes_figure(sizes, {PRIOR_LABELS[p]: results[p].cluster_sizes for p in self.priors},
                                           title=self._title(start))
        self.view = FigureView(self.figure)
        self.imbalance.observe(lambda change: self.update(imbalance_factor=change["new"]), names="value")
        self.widget = W.VBox([self.imbalance, self.sign.line, self.view.widget, self.status])
        self.update(imbalance_factor=start)

    @staticmethod
    def _title(imbalance_factor: float) -> str:
        return f"Cluster sizes, sorted: found with each prior beside the true ones (imbalance factor {imbalance_factor:g})"

    def compute(self, imbalance_factor: float) -> tuple[np.ndarray, dict]:
        """Generate the blobs and train one head per prior: ``(true sizes, {prior: ClusteringResult})``."""
        X, y, sizes = imbalanced_blobs(self.num_clusters, imbalance_factor, n_max=self.n_max, seed=self.seed)
        return sizes, {p: train_clustering_head(X, self.num_clusters, prior=p, prior_weight=self.prior_weights[p],
                                                labels=y, steps=self.steps, batch_size=self.batch_size,
                                                seed=self.seed)
                       for p in self.priors}

    @property
    def results(self) -> dict:
        """``{prior: ClusteringResult}`` of the imbalance factor shown."""
        return self.cache[self.shown][1]

    @property
    def true_sizes(self) -> np.ndarray:
        """True blob sizes of the imbalance factor shown."""
        return self.cache[self.shown][0]

    def verdicts(self, imbalance_factor: float | None = None) -> list[Verdict]:
        """Checkable sentences about one imbalance factor's results (default: the one shown).

        Weibull against uniform prior in matched accuracy and in size distance (lower is
        closer to the true size profile), and the empty clusters left without a prior
        against the Weibull prior's.
        """
        v = self.shown if imbalance_factor is None else check_imbalance_factor(imbalance_factor)
        if v not in self.cache:
            self.cache[v] = self.compute(v)
        res = self.cache[v][1]
        where = f"At imbalance factor {v:g}"
        out = []
        if "weibull" in res and "uniform" in res:
            pair = lambda attr: {PRIOR_LABELS[p]: getattr(res[p], attr) for p in ("weibull", "uniform")}
            out.append(compare("matched accuracy", pair("matched_accuracy"), digits=3, difference="",
                               context=where))
            out.append(compare("size distance", pair("size_distance"), digits=3, difference="", context=where))
        if "none" in res and "weibull" in res:
            out.append(compare("number of empty clusters",
                               {PRIOR_LABELS["none"]: res["none"].num_empty,
                                PRIOR_LABELS["weibull"]: res["weibull"].num_empty},
                               digits=0, difference="cluster(s)", context=where))
        return out

    def update(self, *, imbalance_factor: float | None = None) -> None:
        """Show the results of an imbalance factor (the slider's callback); trains it first if not stored."""
        v = float(self.imbalance.value if imbalance_factor is None else check_imbalance_factor(imbalance_factor))
        if v not in self.cache:
            with self.sign.busy(self.widget, f"training {len(self.priors)} clustering heads at imbalance factor {v:g}"):
                self.cache[v] = self.compute(v)
        self.shown = v
        sizes, results = self.cache[v]
        update_cluster_sizes(self.figure, sizes, {PRIOR_LABELS[p]: r.cluster_sizes for p, r in results.items()},
                             title=self._title(v))
        self.view.redraw()
        head = "".join(f"<th style='{_HEAD}'>{h}</th>"
                       for h in ("matched acc.", "NMI", "size distance", "empty clusters"))
        rows = "".join(
            f"<tr><td style='{_CELL};text-align:left'>{html.escape(PRIOR_LABELS[p])}</td>"
            f"<td style='{_CELL}'>{r.matched_accuracy:.3f}</td><td style='{_CELL}'>{r.nmi:.3f}</td>"
            f"<td style='{_CELL}'>{r.size_distance:.3f}</td><td style='{_CELL}'>{r.num_empty}</td></tr>"
            for p, r in results.items())
        sentences = "".join(f"<li>{html.escape(x.text)}</li>" for x in self.verdicts(v))
        self.status.value = (f"<table style='border-collapse:collapse'><tr><th style='{_HEAD};text-align:left'>"
                             f"prior</th>{head}</tr>{rows}</table><ul style='margin:4px 0'>{sentences}</ul>")

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
