#!/usr/bin/env python
"""`python scripts/team_stack.py start|stop|grant ...`: the team's stack (visionops.stack.team)."""

import sys

from visionops.stack.team import main

if __name__ == "__main__":
    sys.exit(main())
