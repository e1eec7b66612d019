"""`python -m providers.simulator`: the same as `gateway simulate`."""

from __future__ import annotations

from providers.simulator.cli import main

raise SystemExit(main())
