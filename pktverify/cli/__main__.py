"""``python -m pktverify.cli``: the CLI's :func:`~pktverify.cli.main`, its status as the exit code."""

import sys

from . import main

sys.exit(main())
