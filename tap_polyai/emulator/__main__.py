"""``python -m tap_polyai.emulator`` runs the same console entry point as ``polyai-emulator``."""

from .cli import main

raise SystemExit(main())
