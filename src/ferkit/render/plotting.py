"""matplotlib for every figure ferkit draws: the file-only Agg back-end, chosen in one place."""

from __future__ import annotations

import io


def pyplot():
    """matplotlib.pyplot on the Agg back-end (no display needed; imported only when something is drawn)."""
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False  # titles carry file names: "$x$" must stay text, not TeX
    import matplotlib.pyplot as plt

    return plt


def png_bytes(fig, dpi: int = 90) -> bytes:
    """The figure as PNG bytes; closes it."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    pyplot().close(fig)
    return buffer.getvalue()
