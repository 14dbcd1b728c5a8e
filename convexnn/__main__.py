"""``python -m convexnn``: the command line (see :mod:`convexnn.cli`; needs the ``cli`` extra)."""

import sys

from convexnn.cli import main

sys.exit(main())
