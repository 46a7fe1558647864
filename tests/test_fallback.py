"""Exports show a readable message and a static picture where scripts do not run."""
from __future__ import annotations

import base64
import re
import struct
import zlib

import numpy as np

import llm_widgets as lw
from llm_widgets import fallback

XSS = "<img src=x onerror=alert(1)>"


def _decode_png(data: bytes) -> np.ndarray:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8: pos + 8 + n]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == struct.unpack(">I", data[pos + 8 + n: pos + 12 + n])[0]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, 3)


def test_png_heatmap_is_the_matrix_on_the_scale():
    m = np.array([[0.0, 1.0], [0.5, 0.25]], np.float32)
    tag = fallback.heatmap(m, "a caption <b>", min_px=4)
    uri = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
    img = _decode_png(base64.b64decode(uri))
    assert img.shape == (4, 4, 3)
    assert tuple(img[0, 0]) == (255, 255, 255) and tuple(img[0, 3]) == (8, 48, 107)  # 0 white, max darkest
    assert "a caption &lt;b&gt;" in tag and "<b>" not in tag
    div = fallback.colours(np.array([-1.0, 0.0, 1.0]), signed=True)
    assert tuple(div[1]) == (247, 247, 247) and div[0][2] > div[0][0] and div[2][0] > div[2][2]


def test_every_export_carries_the_fallback_escaped(tiny_gpt2, tmp_path):
    keyword = lw.teaching.keyword_classifier()
    views = [lw.AttentionView(keyword, f"the movie was {XSS}"),
             lw.AttributionView(keyword, f"the movie was {XSS}", method="saliency", background=False),
             lw.LogitLensView(tiny_gpt2, "the cat sat"),
             lw.NeuronView(tiny_gpt2, "the cat sat"),
             lw.DirectLogitView(tiny_gpt2, "the cat sat", target="the")]
    for i, v in enumerate(views):
        page = v.to_html(tmp_path / f"v{i}.html").read_text()
        fb = page[page.index('<div id="lw-fallback"'): page.index('<div id="lw-root">')]
        assert "Trust HTML" in fb and ("<img" in fb or "<span" in fb), type(v).__name__
        assert "onerror=alert" not in fb.replace("&lt;img src=x onerror=alert(1)&gt;", "")
