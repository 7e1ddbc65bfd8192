"""Offline augmentation: an albumentations policy from params, packed uint8 arrays, a preview."""
