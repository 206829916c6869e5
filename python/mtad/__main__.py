"""`python -m mtad` runs the `mtad` command."""

import sys

from .cli import main

sys.exit(main())
