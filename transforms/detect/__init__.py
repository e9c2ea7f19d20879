"""PII detection, offline over Presidio with spaCy: one submodule per job, imported directly."""
