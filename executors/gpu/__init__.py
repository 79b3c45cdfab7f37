"""GPU plane: media services on torch (CUDA when present, CPU otherwise)."""
