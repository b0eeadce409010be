"""``python -m ssps`` is the ``ssps`` command."""

import sys

from ssps.cli import main

sys.exit(main())
