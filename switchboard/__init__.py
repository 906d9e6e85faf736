"""switchboard: community telephone switchboard and #9 neighbourhood alarm for Asterisk."""

__version__ = "0.1.0"
