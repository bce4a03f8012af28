"""`python -m ham_core <command>`: see ham_core.cli."""
import sys

from .cli import main

sys.exit(main())
