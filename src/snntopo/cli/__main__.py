"""``python -m snntopo.cli``: the ``snntopo`` command."""

import sys

from . import main

sys.exit(main())
