"""`python -m edged`: the same command line as the `edged` program."""

import sys

from edged.cli import main

sys.exit(main())
