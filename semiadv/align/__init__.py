"""Face detection and eye alignment."""
