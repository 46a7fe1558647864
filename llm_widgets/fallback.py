"""What an exported view shows where its scripts do not run (JupyterLab's untrusted HTML, a
sandboxed iframe, an e-mail client): a readable message and a static picture of the main figure --
a PNG heatmap, tokens coloured by their scores, or a table. Pure numpy + zlib; every string escaped.
"""
from __future__ import annotations

import base64
import html
import struct
import zlib

import numpy as np

MESSAGE = ("This is an interactive llm-widgets view: it needs JavaScript. In JupyterLab, open the file "
           "and click \u201cTrust HTML\u201d (or open it in a web browser). Below: a static picture of it.")
# the same end colours as the front end's scales: white -> blue (sequential), blue -> white -> red
_SEQ = np.array([[255, 255, 255], [198, 219, 239], [107, 174, 214], [33, 113, 181], [8, 48, 107]], float)
_DIV = np.array([[5, 48, 97], [67, 147, 195], [247, 247, 247], [214, 96, 77], [103, 0, 31]], float)


def colours(values: np.ndarray, signed: bool, vmax: float | None = None) -> np.ndarray:
    """[..., 3] uint8 colours of values on the sequential (0..vmax) or diverging (-vmax..vmax) scale."""
    v = np.nan_to_num(np.asarray(values, np.float64))
    vmax = float(vmax if vmax else (np.abs(v).max() or 1.0))
    x = np.clip(0.5 + v / (2 * vmax), 0, 1) if signed else np.clip(v / vmax, 0, 1)
    stops = _DIV if signed else _SEQ
    pos = x * (len(stops) - 1)
    i = np.minimum(pos.astype(int), len(stops) - 2)
    f = (pos - i)[..., None]
    return np.round(stops[i] * (1 - f) + stops[i + 1] * f).astype(np.uint8)


def png(rgb: np.ndarray) -> bytes:
    """PNG bytes of an [H, W, 3] uint8 image."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def heatmap(values: np.ndarray, caption: str, signed: bool = False, vmax: float | None = None,
            min_px: int = 320) -> str:
    """An <img> of a [R, C] matrix, each cell a square of pixels (at least min_px on the long side)."""
    values = np.asarray(values, np.float32)
    cell = max(1, -(-min_px // max(values.shape)))
    rgb = colours(values, signed, vmax).repeat(cell, axis=0).repeat(cell, axis=1)
    uri = "data:image/png;base64," + base64.b64encode(png(rgb)).decode("ascii")
    return (f'<figure style="margin:8px 0"><img alt="{html.escape(caption)}" src="{uri}" '
            f'style="image-rendering:pixelated;max-width:100%"><figcaption>{html.escape(caption)}</figcaption></figure>')


def token_strip(tokens: list[str], weights: np.ndarray | None, caption: str, signed: bool = True) -> str:
    """Tokens as text, each on a background coloured by its weight."""
    cols = colours(weights, signed) if weights is not None else None
    spans = []
    for i, t in enumerate(tokens):
        style = "padding:1px 3px;margin:1px;display:inline-block;border-radius:2px"
        title = ""
        if cols is not None:
            r, g, b = (int(c) for c in cols[i])
            dark = 0.299 * r + 0.587 * g + 0.114 * b < 140
            style += f";background:rgb({r},{g},{b});color:{'#fff' if dark else '#111'}"
            title = f' title="{float(weights[i]):.4f}"'
        spans.append(f'<span style="{style}"{title}>{html.escape(t)}</span>')
    return f'<div>{html.escape(caption)}</div><div style="line-height:1.9">{"".join(spans)}</div>'


def table(rows: list[dict], columns: list[str], caption: str) -> str:
    """A plain HTML table of rows (numbers to 3 decimals)."""
    def cell(v) -> str:
        return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in rows)
    return (f'<table style="border-collapse:collapse" border="1" cellpadding="3"><caption>{html.escape(caption)}'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


def block(figure: str) -> str:
    """The fallback element render_html puts in the page (the export host removes it on mount)."""
    return (f'<div id="lw-fallback" style="border:1px solid #ccc;padding:10px;max-width:960px">'
            f'<p style="margin:0 0 8px 0"><b>{html.escape(MESSAGE)}</b></p>{figure}</div>')
