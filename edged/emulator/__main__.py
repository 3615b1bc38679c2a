"""`python -m edged.emulator`: the emulator on its own (as `edged emulate`)."""

import sys

from edged.emulator.run import main

sys.exit(main())
