"""The hotline's schema migrations (Alembic branch C{hotline}; see L{switchboard.migrations})."""

MODELS = "switchboard.calllog"  # declares the hotline's tables
