"""The broadcast's schema migrations (Alembic branch C{broadcast}; see L{switchboard.migrations})."""

MODELS = "broadcast.models"  # declares the broadcast's tables
