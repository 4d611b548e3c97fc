"""Core's built-in plugin: small synthetic datasets that need no download."""
