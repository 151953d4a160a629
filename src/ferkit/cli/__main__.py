"""`python -m ferkit.cli ...` runs the `ferkit` command."""

import sys

from ferkit.cli import main

sys.exit(main())
