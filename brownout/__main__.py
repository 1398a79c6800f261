"""``python -m brownout``: the ``brownout`` command."""

from brownout.cli import main

raise SystemExit(main())
