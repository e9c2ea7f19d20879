"""Enforced k-anonymity: the pure cores of multidimensional Mondrian (no Beam here)."""
