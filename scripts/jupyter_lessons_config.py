"""JupyterLab configuration of ``python3 scripts/quickstart.py lessons`` (passed with ``--config``).

Saving a notebook keeps its code, text and ordinary outputs but drops

- every output that displays a live widget (MIME type
  ``application/vnd.jupyter.widget-view+json``: ipywidgets, plotly FigureWidgets,
  anywidgets), and
- the widget state in the notebook's metadata (``metadata.widgets``).

A widget view can only be shown by the kernel that created its model; once that
kernel is gone, a saved view makes JupyterLab log "widget model not found" when
the notebook is reopened. Running the cell again brings the widget back.

Traitlets runs this file with ``get_config`` defined; it uses
only the standard library.
"""
import warnings

WIDGET_VIEW_MIME = "application/vnd.jupyter.widget-view+json"


def strip_widget_views(model, **kwargs):
    """Pre-save hook: drop widget-view outputs and saved widget state from a notebook ``model``.

    Parameters
    ----------
    model : dict
        The contents model being saved (``{"type": "notebook", "content": {...}}``);
        other types (files, folders) are left alone.
    **kwargs
        ``path`` and ``contents_manager``, passed by Jupyter Server; unused.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    notebook = model["content"]
    notebook.get("metadata", {}).pop("widgets", None)
    for cell in notebook.get("cells", []):
        if cell.get("outputs"):
            cell["outputs"] = [out for out in cell["outputs"] if WIDGET_VIEW_MIME not in out.get("data", {})]


c = get_config()  # noqa: F821 -- provided by traitlets when it loads this file
c.ContentsManager.pre_save_hook = strip_widget_views
# JupyterLab applies the configuration to the contents manager twice (server, then the
# lab extension); the second time Jupyter Server reports the hook as overriding itself.
warnings.filterwarnings("ignore", message=r"Overriding existing pre_save_hook \(strip_widget_views\)")
