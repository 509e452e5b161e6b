"""The one home of pktverify's version: the package face, the CLI's ``--version``, SARIF output, the
model cache key and the packaging metadata (``pyproject.toml`` reads it from here) all take it from here."""

__version__ = "0.1.0"
