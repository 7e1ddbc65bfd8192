"""Watching a registered model after it ships: its reference (what it saw at registration),
what it sees now, the tests that say whether that changed, and accuracy estimated without labels."""
