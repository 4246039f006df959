"""The t-SNE explorer of lesson 5: pixel features of several runs and epochs, switched instantly."""
from __future__ import annotations

from typing import Mapping, Sequence

import ipywidgets as W

from ..plotting.segmentation import embedding_figure, update_embedding
from ._busy import BusySign
from ._figure_view import FigureView

__all__ = ["TSNEExplorer"]


class TSNEExplorer:
    """Switch instantly between precomputed t-SNE embeddings (run x epoch) and class subsets.

    Parameters
    ----------
    embeddings : mapping (run, epoch) -> dict
        Outputs of :func:`ceco_lite.tsne.cached_tsne` (``embedding``, ``labels``).
    class_names : sequence of str
    groups : mapping, optional
        ``{"head": [...], "common": [...], "tail": [...]}`` for the subset buttons.
    """

    def __init__(self, embeddings: Mapping[tuple, Mapping], class_names: Sequence[str], *,
                 groups: Mapping[str, Sequence[int]] | None = None, palette=None) -> None:
        if not embeddings:
            raise ValueError("embeddings is empty")
        self.embeddings = dict(embeddings)
        self.class_names = list(class_names)
        self.groups = {g: [int(k) for k in v] for g, v in (groups or {}).items()}
        runs = list(dict.fromkeys(k[0] for k in self.embeddings))
        epochs = sorted({k[1] for k in self.embeddings})
        self.run = W.ToggleButtons(options=runs, value=runs[0], description="run")
        self.epoch = W.SelectionSlider(options=epochs, value=epochs[-1], description="epoch",
                                       continuous_update=False)
        subsets = ["all"] + [g for g in ("head", "common", "tail") if self.groups.get(g)]
        self.subset = W.ToggleButtons(options=subsets, value="all", description="classes")
        first = self.embeddings[(runs[0], epochs[-1])] if (runs[0], epochs[-1]) in self.embeddings \
            else next(iter(self.embeddings.values()))
        self.figure = embedding_figure(first["embedding"], first["labels"], self.class_names, palette=palette,
                                       num_classes=len(self.class_names))
        self.view = FigureView(self.figure)
        self.busy_sign = BusySign()
        for w, key in ((self.run, "run"), (self.epoch, "epoch"), (self.subset, "subset")):
            w.observe(lambda ch, key=key: self._update_busy(**{key: ch["new"]}), names="value")
        self.widget = W.VBox([self.run, self.epoch, self.subset, self.busy_sign.line, self.view.widget])
        self.update()

    def _update_busy(self, **values) -> None:
        # the browser takes about a second to receive and draw several thousand points
        with self.busy_sign.busy(self.widget, "drawing the embedding"):
            self.update(**values)

    def update(self, *, run: str | None = None, epoch: int | None = None, subset: str | None = None) -> None:
        """Show embedding ``(run, epoch)`` restricted to ``subset`` (no recomputation)."""
        run = self.run.value if run is None else run
        epoch = self.epoch.value if epoch is None else epoch
        subset = self.subset.value if subset is None else subset
        emb = self.embeddings.get((run, epoch))
        if emb is None:
            raise KeyError(f"no embedding for run {run!r} at epoch {epoch!r}")
        visible = None if subset == "all" else self.groups[subset]
        update_embedding(self.figure, emb["embedding"], emb["labels"], visible_classes=visible,
                         title=f"t-SNE of pixel features: {run}, epoch {epoch}, {subset} classes")
        self.view.redraw()

    def _repr_mimebundle_(self, **kwargs):
        return self.widget._repr_mimebundle_(**kwargs)
