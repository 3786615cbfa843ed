"""Nuage: a hosted phone system with a web softphone."""

__version__ = "0.1.0"
