"""The registered model as it is served: the MLflow pyfunc (image bytes in, labels out; the
request log for monitoring) and what register hands MLflow to package it."""
