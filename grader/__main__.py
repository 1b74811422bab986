"""`python -m grader ...` is `llmsys ...`."""

import sys

from grader.cli import main

sys.exit(main())
