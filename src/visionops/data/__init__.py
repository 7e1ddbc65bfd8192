"""Data sources and the on-disk class-folder layout `<root>/{train,test}/<class>/<image>`."""
