"""A small document model rendered twice: a self-contained HTML page (figures inlined as base64 PNG, no
scripts, no network) and a Markdown twin whose figures are PNG files in a folder beside it."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path

CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1180px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { border-bottom: 1px solid #eee; padding-bottom: .15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
nav ul { columns: 2; }
p.note { color: #555; font-size: 0.92em; }
code { background: #f4f4f4; padding: 0 .2em; }
"""


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


class Document:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple] = []
        self.figures: dict[str, bytes] = {}

    def heading(self, text: str, level: int = 2, anchor: str | None = None) -> None:
        self.blocks.append(("h", level, text, anchor or slug(text)))

    def paragraph(self, text: str, note: bool = False) -> None:
        """Plain text; `code` spans are kept in both formats."""
        self.blocks.append(("p", text, note))

    def table(self, header: list[str], rows: list[list]) -> None:
        self.blocks.append(("table", [str(h) for h in header], [[str(c) for c in row] for row in rows]))

    def figure(self, name: str, png: bytes, caption: str = "") -> None:
        name = slug(name) + ".png"
        while name in self.figures:
            name = name[:-4] + "-2.png"
        self.figures[name] = png
        self.blocks.append(("figure", name, caption))

    # ------------------------------------------------------------------------------------------ HTML

    @staticmethod
    def _inline_html(text: str) -> str:
        parts = text.split("`")
        return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))

    def to_html(self) -> str:
        out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
               '<meta name="viewport" content="width=device-width, initial-scale=1">',
               f"<title>{html.escape(self.title)}</title><style>{CSS}</style></head><body>",
               f"<h1>{html.escape(self.title)}</h1>"]
        sections = [(text, anchor) for kind, level, text, anchor in
                    (b for b in self.blocks if b[0] == "h") if level == 2]
        if sections:
            out.append("<nav><strong>Contents</strong><ul>" + "".join(
                f'<li><a href="#{a}">{html.escape(t)}</a></li>' for t, a in sections) + "</ul></nav>")
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                _, level, text, anchor = block
                out.append(f'<h{level} id="{anchor}">{html.escape(text)}</h{level}>')
            elif kind == "p":
                _, text, note = block
                opening = '<p class="note">' if note else "<p>"
                out.append(f"{opening}{self._inline_html(text)}</p>")
            elif kind == "table":
                _, header, rows = block
                out.append("<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header)
                           + "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{self._inline_html(c)}</td>" for c in row) + "</tr>" for row in rows]
                out.append("</tbody></table>")
            elif kind == "figure":
                _, name, caption = block
                data = base64.b64encode(self.figures[name]).decode("ascii")
                out.append(f'<figure id="fig-{name[:-4]}"><img alt="{html.escape(caption or name)}" '
                           f'src="data:image/png;base64,{data}">'
                           + (f"<figcaption>{self._inline_html(caption)}</figcaption>" if caption else "")
                           + "</figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"

    # ------------------------------------------------------------------------------------------ Markdown

    @staticmethod
    def _cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    def to_markdown(self, figure_dir: str = "figures") -> str:
        out = [f"# {self.title}", ""]
        for block in self.blocks:
            kind = block[0]
            if kind == "h":
                _, level, text, _anchor = block
                out += ["#" * level + " " + text, ""]
            elif kind == "p":
                _, text, note = block
                out += [f"*{text}*" if note else text, ""]
            elif kind == "table":
                _, header, rows = block
                out.append("| " + " | ".join(self._cell(h) for h in header) + " |")
                out.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
                out += ["| " + " | ".join(self._cell(c) for c in row) + " |" for row in rows]
                out.append("")
            elif kind == "figure":
                _, name, caption = block
                out += [f"![{caption or name}]({figure_dir}/{name})", ""]
                if caption:
                    out += [f"*{caption}*", ""]
        return "\n".join(out)

    def write(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write STEM.html (self-contained), STEM.md and its figures under figures/; returns both paths."""
        out_dir = Path(out_dir)
        figure_dir = out_dir / "figures"
        figure_dir.mkdir(parents=True, exist_ok=True)
        for name, png in self.figures.items():
            (figure_dir / name).write_bytes(png)
        html_path, md_path = out_dir / f"{stem}.html", out_dir / f"{stem}.md"
        html_path.write_text(self.to_html(), encoding="utf-8")
        md_path.write_text(self.to_markdown("figures"), encoding="utf-8")
        return html_path, md_path
