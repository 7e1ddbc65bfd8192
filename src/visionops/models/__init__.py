"""Model zoo (`create_model`) and the pickle-free model file format."""
