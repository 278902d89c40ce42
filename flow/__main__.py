"""``python -m flow``: the ``flow`` command."""

from .cli import main

raise SystemExit(main())
