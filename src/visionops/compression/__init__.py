"""Structured pruning (torch-pruning) and INT8 post-training quantization (ONNX Runtime)."""
