"""Lambda wiring for ferry: configuration from the environment, clients built on first use."""
