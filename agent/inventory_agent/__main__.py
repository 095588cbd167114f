"""``python -m inventory_agent``: the same as the ``inventory-agent`` command."""

import sys

from inventory_agent.cli import main

sys.exit(main())
