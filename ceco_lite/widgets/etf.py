"""Lesson 1 widgets: the simplex ETF (CeCo paper Def. 1, Eq. 1-2) and Lemma 1.

* :class:`ETFExplorer` -- a slider for K draws a simplex ETF in 3-D (a tetrahedron
  for K = 4) next to its Gram matrix (Eq. 2: ``1`` on the diagonal, ``-1/(K-1)`` off it).
* :class:`Lemma1Explorer` -- random unit vectors never beat Lemma 1's bound
  ``max cos >= -1/(K-1)``; the spreading optimiser reaches it.
* :class:`SpreadAnimation` -- an animation of the spreading optimiser
  (:func:`ceco_lite.spread_unit_vectors`) converging to an ETF, played in the browser.
"""
from __future__ import annotations

import ipywidgets as W
import torch

from ..etf import (
    check_simplex_etf,
    lemma1_bound,
    max_pairwise_cosine,
    simplex_etf,
    spread_unit_vectors,
)
from ..plotting import geometry as plotting
from ..plotting.style import NOTATION
from ._busy import BusySign
from ._controls import control_row, slider
from ._figure_view import FigureView
from ._threads import single_thread

__all__ = ["ETFExplorer", "Lemma1Explorer", "SpreadAnimation"]


class ETFExplorer:
    """A simplex ETF with K vectors: 3-D view and Gram matrix, driven by a K slider.

    The ETF is built in its smallest dimension ``d = K - 1`` (docs/conventions.md, section simplex-etf), so K <= 4
    is drawn exactly (K = 4: the regular tetrahedron); for K > 4 the first three
    coordinates are shown (a projection, said in the title).

    Parameters
    ----------
    num_classes : int, default 4
        Initial K (2 <= K <= ``max_classes``).
    max_classes : int, default 12
    seed : int, default 0
        Seed of the random rotation ``U`` of Eq. 1; the "new rotation U" button draws another.

    Attributes
    ----------
    widget : ipywidgets.VBox
    figure : plotly.graph_objects.Figure
        The 3-D view (:func:`ceco_lite.plotting.geometry.etf_vectors_figure`).
    gram_figure : plotly.graph_objects.Figure
        The Gram matrix (:func:`ceco_lite.plotting.geometry.gram_figure`).
    views : tuple of FigureView
        Where the two figures are shown (redrawn after each change).
    k_slider : ipywidgets.IntSlider
    headline : ipywidgets.HTML
        What the figures show for the current K.
    vectors : torch.Tensor
        The ETF currently drawn, ``(K - 1, K)`` float64.
    """

    def __init__(self, num_classes: int = 4, *, max_classes: int = 12, seed: int = 0):
        if not 2 <= num_classes <= max_classes:
            raise ValueError(f"num_classes must be in [2, max_classes={max_classes}], got {num_classes}")
        self.seed = int(seed)
        self.figure = plotting.etf_vectors_figure()
        self.gram_figure = plotting.gram_figure()
        self.k_slider = slider(W.IntSlider, description="K", tooltip="K: number of classes (vectors)",
                               value=num_classes, min=2, max=max_classes, step=1, continuous_update=False)
        self.rotate_button = W.Button(description="new rotation U", icon="refresh",
                                      layout=W.Layout(width="auto", min_width="170px"))
        self.headline = W.HTML()
        self.info = W.HTML()
        self._gram_for = None
        self.k_slider.observe(lambda change: self.update(num_classes=change["new"]), names="value")
        self.rotate_button.on_click(lambda _: self.update(seed=self.seed + 1))
        self.views = (FigureView(self.figure), FigureView(self.gram_figure))
        self.update(num_classes=num_classes)
        self.widget = W.VBox([control_row(self.k_slider, self.rotate_button), self.headline,
                              W.HBox([v.widget for v in self.views], layout=W.Layout(flex_flow="row wrap")),
                              self.info])

    @single_thread()
    def update(self, num_classes: int | None = None, seed: int | None = None) -> None:
        """Rebuild the ETF for ``num_classes`` (default: the slider's) and/or a new rotation ``seed``."""
        if seed is not None:
            self.seed = int(seed)
        K = int(num_classes if num_classes is not None else self.k_slider.value)
        gen = torch.Generator().manual_seed(self.seed)
        M = simplex_etf(K, K - 1, generator=gen, dtype=torch.float64)
        self.vectors = M
        check = check_simplex_etf(M, atol=1e-10)
        bound = lemma1_bound(K)
        shown = "" if K <= 4 else " — the 3-D view shows the first three coordinates (a projection)"
        self.headline.value = (f"<b>K = {K}, d = {K - 1}: every pairwise cosine = {NOTATION['bound']} = "
                               f"{bound:.3f}</b>{shown}")
        plotting.update_etf_vectors(self.figure, M)
        if self._gram_for != K:  # the Gram matrix does not depend on the rotation U
            plotting.update_gram(self.gram_figure, M.T @ M)
            self._gram_for = K
        for view in getattr(self, "views", ()):
            view.redraw()
        self.info.value = (
            f"Eq. 2 check: max |{NOTATION['gram']} − (K/(K−1)) I + 1/(K−1)| = {check.max_deviation:.1e}; "
            f"column norms equal to {check.scale:.3f}; sum of the columns = "
            f"{float(M.sum(dim=1).norm()):.1e} (an ETF is centred)."
        )


class Lemma1Explorer:
    """Histogram of the largest pairwise cosine of random unit-vector sets vs Lemma 1's bound.

    Lemma 1 (CeCo paper Sec. 4.1; proof in the supplement, Eq. 9-10): for unit
    vectors ``max_{k != k'} cos(w_k, w_k') >= -1/(K-1)``, with equality iff simplex ETF.
    Each random set is ``K`` Gaussian vectors in ``R^d``, normalised; its largest
    cosine is :func:`ceco_lite.max_pairwise_cosine`.  The red line is the result of
    :func:`ceco_lite.spread_unit_vectors`.

    Parameters
    ----------
    num_classes : int, default 4
    dim : int, default 3
    num_sets : int, default 400
        Random sets per histogram (slider up to 5000).
    seed : int, default 0

    Attributes
    ----------
    widget, k_slider, dim_slider, sets_slider
    figure : plotly.graph_objects.Figure
        The histogram (changed in place on every change).
    view : ceco_lite.widgets._figure_view.FigureView
        Shows :attr:`figure`.
    headline : ipywidgets.HTML
        What the histogram shows (K, d, best random set, bound).
    max_cosines : torch.Tensor
        ``(num_sets,)`` largest cosine of each random set (last update).
    optimiser_value : float
    """

    def __init__(self, num_classes: int = 4, dim: int = 3, *, num_sets: int = 400, seed: int = 0):
        self.seed = int(seed)
        self._optimiser_cache: dict = {}
        self.figure = plotting.lemma1_histogram_figure()
        self.k_slider = slider(W.IntSlider, description="K", tooltip="K: number of unit vectors per set",
                               value=num_classes, min=2, max=20, continuous_update=False)
        self.dim_slider = slider(W.IntSlider, description="d", tooltip="d: dimension of the vectors",
                                 value=dim, min=1, max=32, continuous_update=False)
        self.sets_slider = slider(W.IntSlider, description="random sets", tooltip="number of random sets drawn",
                                  value=num_sets, min=100, max=5000, step=100, continuous_update=False)
        self.headline = W.HTML()
        self.info = W.HTML()
        for s, key in ((self.k_slider, "num_classes"), (self.dim_slider, "dim"), (self.sets_slider, "num_sets")):
            s.observe(lambda change, key=key: self.update(**{key: change["new"]}), names="value")
        self.view = FigureView(self.figure)
        self.update()
        self.widget = W.VBox([control_row(self.k_slider, self.dim_slider, self.sets_slider), self.headline,
                              self.view.widget, self.info])

    @single_thread()
    def update(self, num_classes: int | None = None, dim: int | None = None, num_sets: int | None = None) -> None:
        """Redraw for new ``num_classes`` / ``dim`` / ``num_sets`` (defaults: the sliders' values)."""
        K = int(num_classes if num_classes is not None else self.k_slider.value)
        d = int(dim if dim is not None else self.dim_slider.value)
        S = int(num_sets if num_sets is not None else self.sets_slider.value)
        gen = torch.Generator().manual_seed(self.seed)
        sets = torch.randn(S, d, K, generator=gen, dtype=torch.float64)
        self.max_cosines = max_pairwise_cosine(sets)
        if (K, d) not in self._optimiser_cache:  # deterministic given (K, d, seed): computed once
            final = spread_unit_vectors(K, d, generator=torch.Generator().manual_seed(self.seed + 1),
                                        return_history=True)[1].max_cosine[-1]
            self._optimiser_cache[(K, d)] = float(final)
        self.optimiser_value = self._optimiser_cache[(K, d)]
        bound = lemma1_bound(K)
        best = float(self.max_cosines.min())
        note = "" if d >= K - 1 else f" (d < K−1 = {K - 1}: no ETF fits, the bound cannot be reached)"
        self.headline.value = (f"<b>K = {K}, d = {d}: best of {S} random sets {best:.3f} ≥ bound "
                               f"{NOTATION['bound']} = {bound:.3f}</b>{note}")
        plotting.update_lemma1_histogram(self.figure, self.max_cosines, bound, self.optimiser_value)
        self.view.redraw()
        below = int((self.max_cosines < bound - 1e-12).sum())
        self.info.value = (f"Random sets below the bound: <b>{below}</b> of {S} (Lemma 1 says 0). "
                           f"Spreading optimiser: max cos = {self.optimiser_value:.6f} "
                           f"(bound − optimiser = {bound - self.optimiser_value:.1e}).")


class SpreadAnimation:
    """Animation of :func:`ceco_lite.spread_unit_vectors` converging to a simplex ETF (Lemma 1).

    The optimiser's snapshots become the frames of one plotly animation
    (:func:`ceco_lite.plotting.geometry.spread_animation_figure`): its play button and step
    slider run in the browser, with no round trip to the kernel. Changing K or pressing
    "new random start" reruns the optimiser (~20 ms) and shows the new animation.

    Parameters
    ----------
    num_classes : int, default 4
    dim : int, default 3
        The vectors are drawn by their first three coordinates.
    steps : int, default 300
    snapshot_every : int, default 5
    seed : int, default 0

    Attributes
    ----------
    widget : ipywidgets.VBox
    figure : plotly.graph_objects.Figure
        The animation shown (one frame per snapshot).
    view : ceco_lite.widgets._figure_view.FigureView
        Shows :attr:`figure` (a new animation replaces the old one in place).
    k_slider : ipywidgets.IntSlider
    restart_button : ipywidgets.Button
    history : ceco_lite.etf.SpreadHistory
    """

    def __init__(self, num_classes: int = 4, dim: int = 3, *, steps: int = 300, snapshot_every: int = 5,
                 seed: int = 0):
        self.dim = int(dim)
        self.steps = int(steps)
        self.snapshot_every = int(snapshot_every)
        self.seed = int(seed)
        self.k_slider = slider(W.IntSlider, description="K", tooltip="K: number of unit vectors",
                               value=num_classes, min=2, max=8, continuous_update=False)
        self.restart_button = W.Button(description="new random start", icon="refresh",
                                       layout=W.Layout(width="auto", min_width="180px"))
        self.view = None
        self.busy_sign = BusySign()
        self.k_slider.observe(lambda change: self._update_busy(num_classes=change["new"]), names="value")
        self.restart_button.on_click(lambda _: self._update_busy(seed=self.seed + 1))
        self.update(num_classes=num_classes)
        self.widget = W.VBox([control_row(self.k_slider, self.restart_button), self.busy_sign.line,
                              self.view.widget])

    def _update_busy(self, **values) -> None:
        # a new animation takes the browser about a second or two to receive and draw
        with self.busy_sign.busy(self.widget, "running the optimiser and drawing its animation"):
            self.update(**values)

    @single_thread()
    def update(self, num_classes: int | None = None, seed: int | None = None) -> None:
        """Rerun the optimiser for ``num_classes`` (default: the slider's) and/or a new ``seed``; show it."""
        if seed is not None:
            self.seed = int(seed)
        K = int(num_classes if num_classes is not None else self.k_slider.value)
        _, self.history = spread_unit_vectors(
            K, self.dim, steps=self.steps, generator=torch.Generator().manual_seed(self.seed),
            return_history=True, snapshot_every=self.snapshot_every)
        bound = lemma1_bound(K)
        final = float(self.history.max_cosine[-1])
        reach = ("reaches the bound (an ETF)" if final - bound < 1e-6
                 else f"stops above the bound (d = {self.dim} < K−1: no ETF exists)")
        space = NOTATION["space"].format(d=self.dim)
        title = f"K = {K} unit vectors in {space}: max cos → {final:.4f}, bound {bound:.4f} — {reach}"
        self.figure = plotting.spread_animation_figure(
            steps=torch.arange(len(self.history.max_cosine)), max_cosine=self.history.max_cosine, bound=bound,
            snapshot_steps=self.history.snapshot_steps, vectors=self.history.vectors, title=title)
        if self.view is None:
            self.view = FigureView(self.figure)
        else:
            self.view.show(self.figure)
