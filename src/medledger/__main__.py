"""``python -m medledger`` is the ``medledger`` command."""

from medledger.cli import main

main()
