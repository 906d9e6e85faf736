"""The callback's schema migrations (Alembic branch C{callback}; see L{switchboard.migrations})."""

MODELS = "callback.models"  # declares the callback's table
