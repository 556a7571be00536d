"""``python -m htaf.cli`` runs the command line."""

import sys

from htaf.cli import main

sys.exit(main())
