"""The headers of the request being served, wherever the code runs (a module of its own: both
auth.py, for the user, and screens.py, for the screen, read them)."""

from __future__ import annotations


def request_headers() -> dict[str, str]:
    """The headers of the request being served: Flask's, or in a background callback (no Flask
    request) the original request's, which Dash keeps in the callback context; {} outside both."""
    try:
        from flask import has_request_context, request

        if has_request_context():
            return dict(request.headers)
    except ImportError:  # pragma: no cover - flask comes with dash
        pass
    try:
        from dash import callback_context

        headers = callback_context.headers
        return dict(headers) if isinstance(headers, dict) else {}
    except Exception:  # no callback context here: not serving anything
        return {}
