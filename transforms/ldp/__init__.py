"""Local differential privacy per record: a pure numpy core, no Beam."""
