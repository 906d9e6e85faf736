"""The #9 alarm's schema migrations (Alembic branch C{alarm}; see L{switchboard.migrations})."""

MODELS = "alarm.models"  # declares the alarm's tables
