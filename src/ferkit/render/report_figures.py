"""The report's figures, each returned as PNG bytes (the HTML embeds them, the Markdown writes them beside it)."""

from __future__ import annotations

import io

import numpy as np

from ferkit.render.plotting import png_bytes, pyplot


def confusion_png(counts, labels, title: str = "") -> bytes:
    from ferkit.render.confusion import plot_confusion

    buffer = io.BytesIO()
    plot_confusion(buffer, np.asarray(counts), labels, title=title)
    return buffer.getvalue()


def curves_png(history: list[dict], title: str = "") -> bytes:
    from ferkit.render.curves import plot_curves

    buffer = io.BytesIO()
    plot_curves(buffer, history, title=title)
    return buffer.getvalue()


def image_rows_png(rows: list[tuple[str, list[np.ndarray], list[str]]], columns: int, cell: float = 1.1) -> bytes:
    """A grid of gray crops: each row is (row title, images, per-image captions)."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), columns + 1, figsize=(cell * (columns + 1) + 1.2, cell * len(rows) + 0.2),
                             squeeze=False, gridspec_kw={"width_ratios": [2.2] + [1] * columns})
    for r, (title, images, captions) in enumerate(rows):
        axes[r, 0].text(1.0, 0.5, title, ha="right", va="center", fontsize=8, transform=axes[r, 0].transAxes)
        for c in range(columns + 1):
            axes[r, c].axis("off")
        for c, (image, caption) in enumerate(zip(images, captions)):
            axes[r, c + 1].imshow(image, cmap="gray", vmin=0, vmax=255)
            axes[r, c + 1].set_title(caption, fontsize=7, pad=2)
    fig.tight_layout(pad=0.3)
    return png_bytes(fig)


def _grid(count: int, per_row: int = 3):
    plt = pyplot()
    rows = (count + per_row - 1) // per_row
    fig, axes = plt.subplots(rows, per_row, figsize=(4.2 * per_row, 3.0 * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.axis("off")
    return fig, list(axes.flat[:count])


def curves_grid_png(perturbations, series: dict[str, dict[str, list[float]]], title: str = "") -> bytes:
    """One panel per perturbation: accuracy against level, one line per series (preprocessing option or model).
    series: {line label: {perturbation name: accuracies}}; levels are placed evenly, ticks show their values."""
    fig, axes = _grid(len(perturbations))
    markers = "os^vDPX*"
    for ax, p in zip(axes, perturbations):
        x = np.arange(len(p.levels))
        for k, (label, curves) in enumerate(series.items()):
            if p.name in curves:
                ax.plot(x, curves[p.name], marker=markers[k % len(markers)], markersize=4, label=label)
        ax.axvline(list(p.levels).index(p.identity), color="gray", lw=0.6, alpha=0.5)
        ax.set_xticks(x, [p.tick(v) for v in p.levels], fontsize=8)
        ax.set_title(p.title, fontsize=10)
        ax.set_xlabel(p.xlabel, fontsize=8)
        ax.set_ylabel("accuracy", fontsize=8)
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    if axes:
        axes[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return png_bytes(fig, dpi=80)


def perturbation_examples_png(rows: list[tuple[str, list[np.ndarray], list[str]]]) -> bytes:
    """What each perturbation does to one face, at every level: rows of (title, images, level captions)."""
    return image_rows_png(rows, max(len(images) for _, images, _ in rows), cell=0.9)


def reliability_png(panels: list[tuple[str, dict, float]]) -> bytes:
    """Reliability diagrams side by side: (title, reliability_bins table, ECE) per panel."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), squeeze=False)
    for ax, (title, table, ece) in zip(axes[0], panels):
        edges = table["edges"]
        centres = (edges[:-1] + edges[1:]) / 2
        width = edges[1] - edges[0]
        has = table["count"] > 0
        ax.bar(centres[has], table["accuracy"][has], width=width * 0.95, color="#4c72b0", alpha=0.85,
               label="accuracy")
        ax.bar(centres[has], (table["confidence"] - table["accuracy"])[has], bottom=table["accuracy"][has],
               width=width * 0.95, color="#dd8452", alpha=0.45, label="gap to confidence")
        ax.plot([0, 1], [0, 1], color="black", lw=0.8, ls="--")
        share = table["count"] / max(table["count"].sum(), 1)
        ax.plot(centres[has], share[has], color="gray", marker=".", lw=0.8, label="share of images")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (top probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{title}\nECE {ece:.4f}", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    return png_bytes(fig)


def saliency_png(rows: list[tuple[str, list[tuple[np.ndarray, np.ndarray, str]]]], columns: int,
                 split_at: int | None = None) -> bytes:
    """Grad-CAM overlays: each row is (row title, [(crop, map, caption, column), ...]); captions starting with ✓
    are green, others red; split_at names the first column of the "wrong" group."""
    plt = pyplot()
    fig, axes = plt.subplots(len(rows), columns + 1, figsize=(1.15 * (columns + 1) + 1.0, 1.25 * len(rows) + 0.3),
                             squeeze=False, gridspec_kw={"width_ratios": [1.6] + [1] * columns})
    for r, (title, cells) in enumerate(rows):
        axes[r, 0].text(1.0, 0.5, title, ha="right", va="center", fontsize=8, transform=axes[r, 0].transAxes)
        for c in range(columns + 1):
            axes[r, c].axis("off")
        for crop, cam, caption, c in cells:
            ax = axes[r, c + 1]
            ax.imshow(crop, cmap="gray", vmin=0, vmax=255)
            ax.imshow(cam, cmap="jet", alpha=0.4, vmin=0, vmax=1)
            ax.set_title(caption, fontsize=6.5, pad=2, color="#2a7a2a" if caption.startswith("✓") else "#b02a2a")
    if split_at is not None and rows:
        fig.suptitle(f"left: {split_at} most confident correct (✓) · right: most confident wrong (✗)", fontsize=9)
    fig.tight_layout(pad=0.3)
    return png_bytes(fig, dpi=80)
