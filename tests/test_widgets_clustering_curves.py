"""Lesson 6 widgets (cluster sizes, training curves) and the HTML tables of runs: set a control, check the
figure changed."""
from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest

from ceco_lite.clustering import imbalanced_blobs
from ceco_lite.iddc import weibull_density
from ceco_lite.plotting.segmentation import weibull_penalty_figure
from ceco_lite.plotting.tables import compare_to_baseline, run_comparison_table
from ceco_lite.published import IN2NECT_TABLE2
from ceco_lite.verdicts import holds
from ceco_lite.widgets import ClusteringExplorer, TrainingCurvesExplorer


def test_clustering_explorer_slider_retrains_and_redraws():
    ex = ClusteringExplorer(num_clusters=4, imbalance_factor=1.0, n_max=40, steps=15,
                            priors=("weibull", "uniform"))
    true_trace = ex.figure.data[0]
    assert list(true_trace.y) == [40, 40, 40, 40]
    before = {tr.name: list(tr.y) for tr in ex.figure.data}
    ex.imbalance.value = 10.0  # slider release -> update()
    _, _, sizes = imbalanced_blobs(4, 10.0, n_max=40, seed=0)
    assert list(ex.figure.data[0].y) == sorted(sizes.tolist(), reverse=True)
    after = {tr.name: list(tr.y) for tr in ex.figure.data}
    assert after != before
    for tr in ex.figure.data[1:]:  # every prior's clusters hold all points
        assert sum(tr.y) == sizes.sum()
    assert set(ex.results) == {"weibull", "uniform"}
    assert "Weibull (IDDC)" in ex.status.value and "uniform prior" in ex.status.value
    assert "10" in ex.figure.layout.title.text


def test_clustering_explorer_rejects_unknown_prior():
    with pytest.raises(ValueError, match="priors"):
        ClusteringExplorer(priors=("weibull", "entropy"))


def test_weibull_penalty_figure_plots_the_library_density():
    fig = weibull_penalty_figure(shapes=(0.3, 2.0), num_points=20)
    x = np.asarray(fig.data[0].x)
    np.testing.assert_allclose(fig.data[0].y, weibull_density(x, scale=5.0, k=0.3))
    np.testing.assert_allclose(fig.data[1].y, weibull_density(x, scale=5.0, k=2.0))
    assert np.all(np.diff(fig.data[0].y) < 0)  # k < 1: decreasing
    assert "IDDC" in fig.data[0].name


def test_run_comparison_table_formats_and_reference_rows():
    html = run_comparison_table({"a<b": {"x": 1.23456, "y": None}}, ["x", "y"], reference=IN2NECT_TABLE2,
                                formats={"x": "{:.1f}"}, headers={"x": "X!"})
    assert "a&lt;b" in html and "<td>1.2</td>" in html and "<td>–</td>" in html and "<th>X!</th>" in html
    assert html.count("color:#777") == 2


def test_compare_to_baseline_lines():
    rows = {"base": {"m": 10.0, "r": 2.0}, "new": {"m": 12.5, "r": 1.0}}
    html = compare_to_baseline(rows, "base", ["m", "r"], labels={"m": "mIoU"}, relative=["r"])
    assert "mIoU 10 → 12.5 (+2.5)" in html and "r 2 → 1 (-50 %)" in html and html.count("<li>") == 1
    with pytest.raises(KeyError, match="baseline"):
        compare_to_baseline(rows, "missing", ["m"])


def test_run_comparison_dropdown_switches_metric():
    hist = {"a": [{"epoch": 1, "miou": 1.0, "nc": {"nc1": 5.0}}, {"epoch": 2, "miou": 2.0, "nc": {"nc1": 4.0}}],
            "b": [{"epoch": 1, "miou": 3.0, "nc": {"nc1": 7.0}}]}
    rc = TrainingCurvesExplorer(hist, ["miou", "nc.nc1"], labels={"nc.nc1": "NC1"})
    assert list(rc.figure.data[0].y) == [1.0, 2.0]
    rc.metric.value = "nc.nc1"
    assert list(rc.figure.data[0].y) == [5.0, 4.0] and list(rc.figure.data[1].y) == [7.0]
    assert rc.figure.layout.yaxis.title.text == "NC1"
    with pytest.raises(ValueError, match="metrics"):
        TrainingCurvesExplorer(hist, [])


def test_clustering_explorer_precomputes_every_slider_value(monkeypatch):
    ex = ClusteringExplorer(num_clusters=4, imbalance_factor=3.0, imbalance_factors=(1.0, 10.0), n_max=40, steps=10,
                            priors=("weibull", "uniform", "none"))
    assert [v for _, v in ex.imbalance.options] == [1.0, 3.0, 10.0]  # the initial value joins the slider
    assert sorted(ex.cache) == [1.0, 3.0, 10.0]
    stored = {v: {p: r.cluster_sizes.tolist() for p, r in res.items()} for v, (_, res) in ex.cache.items()}

    def no_training(*args, **kwargs):
        raise AssertionError("the slider retrained a head")

    monkeypatch.setattr(ex, "compute", no_training)
    for v in (10.0, 1.0):
        ex.imbalance.value = v
        shown = {tr.name: sorted(tr.y, reverse=True) for tr in ex.figure.data}
        assert shown["Weibull (IDDC)"] == sorted(stored[v]["weibull"], reverse=True)
        assert shown["no prior"] == sorted(stored[v]["none"], reverse=True)
        assert f"imbalance factor {v:g}" in ex.figure.layout.title.text


def test_clustering_explorer_trains_unstored_values_under_a_busy_sign(monkeypatch):
    ex = ClusteringExplorer(num_clusters=3, imbalance_factor=1.0, imbalance_factors=(1.0,), n_max=20, steps=5,
                            priors=("weibull",))
    seen = []
    real = ex.compute
    monkeypatch.setattr(ex, "compute", lambda v: (seen.append(("ceco-busy" in ex.widget._dom_classes, v)),
                                                  real(v))[1])
    ex.update(imbalance_factor=5.0)
    assert seen == [(True, 5.0)] and 5.0 in ex.cache
    assert "ceco-busy" not in ex.widget._dom_classes
    with pytest.raises(ValueError, match="imbalance_factor"):
        ex.update(imbalance_factor=0.5)


def test_clustering_explorer_table_and_verdicts_agree_with_results():
    ex = ClusteringExplorer(num_clusters=4, imbalance_factor=10.0, imbalance_factors=(10.0,), n_max=40, steps=10)
    html = ex.status.value
    header, *rows = html.split("<tr>")[1:]
    assert header.count("<th") == 5 and all(r.count("<td") == 5 for r in rows) and len(rows) == 3
    assert all(r.count("text-align:right") >= 4 for r in rows)  # numbers line up under their headers
    verdicts = ex.verdicts()
    assert len(verdicts) == 3
    w, u, n = (ex.results[p] for p in ("weibull", "uniform", "none"))
    assert verdicts[0].values == {"Weibull (IDDC)": w.matched_accuracy, "uniform prior": u.matched_accuracy}
    assert verdicts[2].values == {"no prior": n.num_empty, "Weibull (IDDC)": w.num_empty}
    for v in verdicts:
        assert holds(v.to_dict()) and v.text in html.replace("&#x27;", "'")


def test_figure_view_redraws_only_changed_figures():
    import plotly.graph_objects as go
    from ceco_lite.widgets._figure_view import FigureView
    fig = go.Figure(data=[go.Bar(x=[1, 2], y=np.array([3.0, 4.0]))])
    view = FigureView(fig)
    shown = json.loads(view.data.spec)  # JSON text (numpy arrays travel as plotly's typed-array encoding)
    y = shown["data"][0]["y"]
    assert shown["data"][0]["type"] == "bar" and y["dtype"] == "f8"
    assert np.frombuffer(base64.b64decode(y["bdata"]), dtype="<f8").tolist() == [3.0, 4.0]
    sent = []
    view.data.observe(lambda change: sent.append(change["new"]), names="spec")
    assert not view.redraw() and not sent  # unchanged: nothing sent
    fig.data[0].y = [5.0, 1.0]
    assert view.redraw() and view.shown()["data"][0]["y"] == [5.0, 1.0] and len(sent) == 1
    with pytest.raises(TypeError, match="figure must be a plotly"):
        FigureView([1, 2])


def test_widgets_show_their_figure_through_the_view():
    hist = {"a": [{"epoch": 1, "miou": 1.0}, {"epoch": 2, "miou": 2.0}]}
    rc = TrainingCurvesExplorer(hist, ["miou"])
    shown = rc.view.shown()["data"][0]
    assert shown["y"] == [1.0, 2.0] and rc.view.widget in rc.widget.children


def test_curves_dropdown_shows_plain_text_and_the_axis_keeps_the_notation():
    hist = {"a": [{"epoch": 1, "nc": {"x": 1.0, "y": 2.0}}]}
    rc = TrainingCurvesExplorer(hist, ["nc.x", "nc.y"], labels={"nc.x": "Std<sub>k≠k′</sub> cos", "nc.y": "Δ<sub>I</sub>"},
                                menu_labels={"nc.y": "Delta I"})
    assert [label for label, _ in rc.metric.options] == ["Stdk≠k′ cos", "Delta I"]
    assert rc.figure.layout.yaxis.title.text == "Std<sub>k≠k′</sub> cos"


def test_figure_panes_share_one_plotly_library():
    """Every pane refers to the kernel's one PlotlyLibrary (plotly.js is sent once), whose source is the
    installed plotly.js; a closed library is replaced by a new one."""
    import plotly
    import plotly.graph_objects as go
    from ceco_lite.widgets._figure_view import FigureView, plotly_library
    a, b = FigureView(go.Figure()), FigureView(go.Figure())
    library = plotly_library()
    assert a.widget.library is library and b.widget.library is library
    js = (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_text(encoding="utf-8")
    assert library.source == js and library.version == plotly.__version__
    state = a.widget.get_state()
    assert state["library"] == "IPY_MODEL_" + library.model_id and "source" not in state
    assert len(a.widget._esm) < 10_000  # each pane's own script is small
    library.close()
    assert plotly_library() is not library and FigureView(go.Figure()).widget.library is plotly_library()


def test_a_redraw_changes_only_the_figure_data_model():
    """The figure lives in a plain ipywidgets model; a redraw sends one message to it and none to the pane
    or the library (an anywidget model that initialised late in the browser drops messages)."""
    import plotly.graph_objects as go
    from ceco_lite.widgets._figure_view import FigureView
    view = FigureView(go.Figure(go.Scatter(y=[1, 2])))
    assert (view.data._model_module, view.data._model_name) == ("@jupyter-widgets/base", "WidgetModel")
    assert view.widget.get_state()["data"] == "IPY_MODEL_" + view.data.model_id
    assert json.loads(view.data.get_state()["spec"])["data"][0]["y"] == [1, 2]  # in the first message
    sent = {"pane": [], "data": []}
    view.widget.observe(lambda change: sent["pane"].append(change["name"]))
    view.widget.library.observe(lambda change: sent["pane"].append(change["name"]))
    view.data.observe(lambda change: sent["data"].append(change["name"]))
    view.figure.data[0].y = [3, 4]
    assert view.redraw()
    assert sent == {"pane": [], "data": ["spec"]}
