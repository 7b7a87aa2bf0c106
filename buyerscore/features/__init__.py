"""Point-in-time features (computed as of a cut-off) and labels (strictly after it)."""
