"""The entry layer: the `visionops` subcommands (predict, monitor, serve, preset, tune) and the
runner every stage script in `pipeline/` starts with (`stage.run_stage`)."""
