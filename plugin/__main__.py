"""`python -m sam2roto`: the command line."""

import sys

from .cli import main

sys.exit(main())
