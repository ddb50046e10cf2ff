"""forensics: access-log forensics for accidental data exposures."""

__version__ = "0.1.0"
