"""The web front end (``dvt-edge ui``): :mod:`edge.ui.service` holds the jobs (no Gradio), :mod:`edge.ui.app`
wires them to Gradio (optional: ``pip install 'dvt-edge[ui]'``)."""
