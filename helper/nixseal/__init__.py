"""nixseal: secrets management for NixOS."""

__version__ = "0.1.0"
