"""Transformation families; the public names are re-exported by ``gradchain``."""
