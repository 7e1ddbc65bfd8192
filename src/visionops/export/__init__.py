"""ONNX export + parity, ONNX Runtime sessions, latency, and the TensorRT engine builder."""
