"""``python -m pktverify``: the same as the ``pktverify`` command."""

from .cli import run

run()
