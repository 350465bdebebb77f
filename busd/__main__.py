"""``python -m busd``: the busgw command line."""

import sys

from busd.cli import main

sys.exit(main())
