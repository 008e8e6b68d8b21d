"""One module per concern; requirements.registry lists them in planning order."""
