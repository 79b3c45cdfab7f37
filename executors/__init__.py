"""The executor core and the two planes' task registries."""
