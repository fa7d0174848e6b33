"""The HTTP service: referee's API plus an OpenAI-compatible moderation endpoint."""

from referee.serve.app import create_app

__all__ = ["create_app"]
