"""Protocol presets as YAML files, read by `bench.engine.presets` and parsed by `protocols.protocol`."""
