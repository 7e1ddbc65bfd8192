"""Data sources, packed into data/raw as tar shards with an index of `{train,test}/<class>/<image>` paths."""
