"""Pieces every blueprint shares: configuration, extensions, models, access rules, audit, errors."""
