"""`python -m ferkit ...` runs the `ferkit` command (what torchrun and other launchers call)."""

import sys

from ferkit.cli import main

sys.exit(main())
