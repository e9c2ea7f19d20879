"""Canaries: keyed candidate records planted in a release, audited from a model's scores."""
