"""``python -m edge.cli``: the keycam command line."""

import sys

from edge.cli import main

sys.exit(main())
