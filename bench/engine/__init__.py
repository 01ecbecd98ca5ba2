"""The engine: one driver over cases, model/protocol spaces, the interactive loop, executors, the store."""
