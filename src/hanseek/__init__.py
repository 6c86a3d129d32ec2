"""hanseek: Korean content understanding — feed, search, word weights and sentiment on one store."""

__version__ = "0.1.0"
