"""Limits that more than one service must agree on, each with its one default."""

from __future__ import annotations

# UPLOAD_MAX_BYTES: the largest input file. The tasks service signs upload policies with it and the
# gateway's local upload endpoint enforces it; both read the same setting with this default.
UPLOAD_MAX_BYTES = 15 * 1024 * 1024
