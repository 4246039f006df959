"""The minority-collapse explorer of lesson 2: neural collapse and minority collapse in the layer-peeled model.

:class:`MinorityCollapseExplorer` retrains the unconstrained-features /
layer-peeled model (:func:`ceco_lite.ufm.train_ufm`, Fang et al. 2021) on every
slider release -- imbalance ratio R, number of minority classes K_B, learned or
fixed-ETF classifier -- and shows

* the cosines between the classifier columns and between the centred class means
  (a simplex ETF has ``-1/(K-1)`` off the diagonal, CeCo paper Eq. 2);
* the mean cosine between the minority classifiers against R, for a learned and a
  fixed-ETF classifier (minority collapse: it tends to 1 for the learned one);
* the neural-collapse statistics of :func:`ceco_lite.nc_metrics` (docs/conventions.md, section nc-statistics).
"""
from __future__ import annotations

import ipywidgets as W
import torch

from ..nc import nc_metrics
from ..gradients import mean_pairwise_cosine
from ..plotting import geometry as plotting
from ..ufm import minority_class_sizes, minority_collapse_sweep, train_ufm
from ._busy import BusySign
from ._controls import control_row, slider
from ._figure_view import FigureView
from ._threads import single_thread

__all__ = ["MinorityCollapseExplorer", "DEFAULT_RATIOS"]

#: imbalance ratios of the minority-collapse curves
DEFAULT_RATIOS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class MinorityCollapseExplorer:
    """Live layer-peeled model: sliders for R and K_B, a learned / fixed-ETF switch.

    Parameters
    ----------
    num_classes : int, default 10
        K (Fang et al. use K_A + K_B = 10).
    dim : int, default 16
        Feature dimension d (>= K - 1 so that an ETF fits).
    imbalance_ratio : float, default 10
        Initial R = n_A / n_B (slider from 1 to 1000, log scale).
    num_minority : int, default 5
        Initial K_B.
    classifier : {"learned", "fixed_etf"}, default "learned"
    ratios : sequence of float, default :data:`DEFAULT_RATIOS`
        R values of the curves (recomputed when K_B changes).
    seed : int, default 0
    **train_kwargs
        Passed to :func:`ceco_lite.ufm.train_ufm` (``steps``, ``weight_decay``,
        ``feature_decay``, ``samples_per_class``, ...).

    Attributes
    ----------
    widget : ipywidgets.VBox
    figure : plotly.graph_objects.Figure
    view : FigureView
        Shows :attr:`figure`.
    r_slider, kb_slider, classifier_toggle : ipywidgets widgets
    result : ceco_lite.ufm.UFMResult
        The model trained for the current slider values.
    stats : dict
        :func:`ceco_lite.nc_metrics` of ``result`` (``global_mean="classes"``).
    curves : dict
        ``{"learned": tensor, "fixed_etf": tensor}`` minority mean cosines over ``ratios``.
    """

    def __init__(self, num_classes: int = 10, dim: int = 16, *, imbalance_ratio: float = 10.0,
                 num_minority: int = 5, classifier: str = "learned", ratios=DEFAULT_RATIOS, seed: int = 0,
                 **train_kwargs):
        self.num_classes = int(num_classes)
        self.dim = int(dim)
        self.ratios = torch.as_tensor(ratios, dtype=torch.float64)
        self.seed = int(seed)
        self.train_kwargs = dict(train_kwargs)
        self.figure = plotting.minority_collapse_figure()
        self.r_slider = slider(W.FloatLogSlider, description="R",
                               tooltip="imbalance ratio R = n_majority / n_minority",
                               value=imbalance_ratio, base=10, min=0, max=3, step=0.05, readout_format=".0f",
                               continuous_update=False)
        self.kb_slider = slider(W.IntSlider, description="K<sub>B</sub>", description_allow_html=True, tooltip="K_B: number of minority classes",
                                value=num_minority, min=1, max=self.num_classes - 1, continuous_update=False)
        self.classifier_toggle = W.ToggleButtons(options=[("learned classifier", "learned"),
                                                          ("fixed ETF classifier", "fixed_etf")],
                                                 value=classifier, description="classifier",
                                                 style={"description_width": "80px"})
        self.headline = W.HTML()
        self.info = W.HTML()
        self.busy_sign = BusySign()
        self.r_slider.observe(lambda c: self.update(imbalance_ratio=c["new"]), names="value")
        self.kb_slider.observe(lambda c: self.update(num_minority=c["new"]), names="value")
        self.classifier_toggle.observe(lambda c: self.update(classifier=c["new"]), names="value")
        self.curves: dict = {}
        self._curves_for = None
        self.widget = None
        self.view = None
        self.update()
        self.view = FigureView(self.figure)
        self.widget = W.VBox([control_row(self.r_slider, self.kb_slider), self.classifier_toggle,
                              self.busy_sign.line, self.headline, self.view.widget, self.info])

    # ------------------------------------------------------------------ callbacks
    def _train_kwargs(self) -> dict:
        kw = dict(steps=600, seed=self.seed)
        kw.update(self.train_kwargs)
        return kw

    def update_curves(self, num_minority: int) -> None:
        """Recompute the minority-collapse curves (both classifiers, all ``ratios``, one batch each)."""
        if num_minority < 2:
            self.curves = {"learned": None, "fixed_etf": None}
        else:
            kw = self._train_kwargs()
            learned = minority_collapse_sweep(self.ratios, self.num_classes, num_minority, self.dim,
                                              classifier="learned", **kw)["classifier_cosine"]
            # a fixed classifier does not depend on training: steps=0 gives the same W at no cost
            kw["steps"] = 0
            fixed = minority_collapse_sweep(self.ratios, self.num_classes, num_minority, self.dim,
                                            classifier="fixed_etf", **kw)["classifier_cosine"]
            self.curves = {"learned": learned, "fixed_etf": fixed}
        self._curves_for = num_minority
        empty = torch.empty(0)
        plotting.update_minority_curves(
            self.figure, ratios=self.ratios if num_minority >= 2 else empty,
            learned=self.curves["learned"] if num_minority >= 2 else empty,
            fixed=self.curves["fixed_etf"] if num_minority >= 2 else empty)

    def update(self, imbalance_ratio: float | None = None, num_minority: int | None = None,
               classifier: str | None = None) -> None:
        """Retrain the model for the given values (defaults: the widgets' values) and redraw."""
        if self.widget is None:  # first state, before the widget is shown
            self._update(imbalance_ratio, num_minority, classifier)
            return
        with self.busy_sign.busy(self.widget, "retraining the layer-peeled model"):
            self._update(imbalance_ratio, num_minority, classifier)

    @single_thread()
    def _update(self, imbalance_ratio, num_minority, classifier) -> None:
        R = float(imbalance_ratio if imbalance_ratio is not None else self.r_slider.value)
        KB = int(num_minority if num_minority is not None else self.kb_slider.value)
        kind = classifier if classifier is not None else self.classifier_toggle.value
        K = self.num_classes
        if self._curves_for != KB:
            self.update_curves(KB)
        sizes = minority_class_sizes(K, KB, R)
        self.result = train_ufm(sizes, self.dim, classifier=kind, **self._train_kwargs())
        res = self.result
        labels = res.labels
        self.stats = nc_metrics(res.flat_features(), labels, K, classifier=res.classifier, global_mean="classes")
        means = res.class_means()
        centred = means - means.mean(dim=1, keepdim=True)
        minority = list(range(K - KB, K))
        if KB >= 2:
            cos_w = float(mean_pairwise_cosine(res.classifier, minority))
            cos_h = float(mean_pairwise_cosine(centred, minority))
            headline = (f"minority mean cos: classifiers {cos_w:.3f}, class means {cos_h:.3f} "
                        f"(ETF {-1 / (K - 1):.3f})")
        else:
            cos_w = None
            headline = "one minority class: no minority pair to compare (move K<sub>B</sub> ≥ 2)"
        name = "learned" if kind == "learned" else "fixed ETF"
        title = f"R = {R:.0f}, K<sub>B</sub> = {KB} of {K}, {name} W — {headline}"
        self.headline.value = f"<b>{title}</b>"
        with self.figure.batch_update():
            plotting.update_minority_geometry(self.figure, res.classifier, centred, minority=minority)
            plotting.update_minority_curves(
                self.figure, current_ratio=R,
                current_learned=cos_w if kind == "learned" else None,
                current_fixed=cos_w if kind == "fixed_etf" else None)
            plotting.update_nc_bars(self.figure, self.stats)
        if self.view is not None:
            self.view.redraw()
        loss = res.loss_history
        self.info.value = (
            f"Trained {len(loss) - 1} full-batch steps: loss {float(loss[0]):.4f} → {float(loss[-1]):.6f} "
            f"(change over the last 10 steps {float(loss[-11] - loss[-1]):.1e}). "
            f"Class sizes n<sub>k</sub>: {', '.join(f'{n:.3g}' for n in sizes.tolist())}. "
            f"NC1 = {self.stats['nc1']:.2e}, NC3 = {self.stats['self_duality']:.2e}."
        ) + self._nc1_note()

    def _nc1_note(self) -> str:
        """A sentence when Papyan's NC1 is large only because Σ_B is nearly singular (see the lesson text)."""
        nc1, quotient = float(self.stats["nc1"]), float(self.stats["nc1_quotient"])
        if nc1 > 1e3 * max(quotient, 1e-300) and nc1 > 1e-6:
            return (f" NC1 = {nc1:.1e} but Tr Σ<sub>W</sub> / Tr Σ<sub>B</sub> = {quotient:.1e}: the features sit on "
                    f"their class means; NC1's pseudo-inverse Σ<sub>B</sub><sup>†</sup> amplifies round-off because "
                    f"merged minority means make Σ<sub>B</sub> nearly singular.")
        return ""
