"""``python -m pktverify``: the same as the ``pktverify`` command."""

import sys

from .cli import main

sys.exit(main())
