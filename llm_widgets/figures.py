"""bqplot companion figures of compute results (compute/ stays free of figures and HTML)."""
from __future__ import annotations

import numpy as np

from .compute.faithfulness import Faithfulness

# The front end's category colours (js/src/lib/scatter.ts PALETTE): the same class or cluster has the
# same colour in a view and in its companion figure.
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def deletion_figure(faith: Faithfulness, row: int = 0, title: str = ""):
    """A bqplot Figure of the deletion curve of target `row` (top tokens first vs random order)."""
    import bqplot as bq

    x = bq.LinearScale(min=0.0, max=1.0)
    y = bq.LinearScale()
    xs = np.asarray(faith.deletion_x, np.float64)
    lines = bq.Lines(x=xs, y=np.stack([faith.deletion[row], faith.deletion_random[row]]).astype(np.float64),
                     scales={"x": x, "y": y}, colors=["#c0392b", "#7f8c8d"], line_style="solid",
                     labels=["top tokens first", "random order"], display_legend=True)
    ax_x = bq.Axis(scale=x, label="fraction of tokens removed", tick_format=".0%",
                   tick_values=[0.0, 0.25, 0.5, 0.75, 1.0])  # no colliding ticks near 100%
    ax_y = bq.Axis(scale=y, orientation="vertical", label="target output")
    return bq.Figure(marks=[lines], axes=[ax_x, ax_y], title=title or "Deletion curve",
                     fig_margin={"top": 40, "bottom": 45, "left": 60, "right": 20},
                     layout={"width": "420px", "height": "280px"})
