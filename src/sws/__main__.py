"""``python -m sws ...`` (and ``torchrun ... -m sws train ...``) run the command line."""

import sys

from sws.cli import main

sys.exit(main())
