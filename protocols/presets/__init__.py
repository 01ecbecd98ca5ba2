"""Protocol presets as YAML files, read by `bench.presets` and parsed by `protocols.protocol`."""
