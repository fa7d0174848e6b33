"""The reviewer console: server-rendered pages (Jinja2, a little plain JS) and ``POST /v1/appeals``.

``router`` is included by ``serve.app.create_app``; see ``routes`` and docs/review.md.
"""

from referee.serve.console.routes import router

__all__ = ["router"]
