"""The board's schema migrations (Alembic branch C{board}; see L{switchboard.migrations})."""

MODELS = "board.models"  # declares the board's table
