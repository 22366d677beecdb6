"""``python -m qfabric``: the ``qfabric`` command."""

from qfabric.cli.entry import main

main()
