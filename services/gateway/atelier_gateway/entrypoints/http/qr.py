"""QR codes as SVG, drawn here by ``segno`` (never by a third-party web service): the WeChat
Native pay ``code_url`` of an order, for the browser to show and the phone to scan."""

from __future__ import annotations

import io

import segno


def qr_svg(data: str) -> bytes:
    """An SVG document of ``data`` as a QR code (error correction M, a quiet zone of 4)."""
    out = io.BytesIO()
    segno.make_qr(data, error="m").save(
        out, kind="svg", scale=6, border=4, xmldecl=True, title="WeChat Pay QR code"
    )
    return out.getvalue()
