"""The local stack: the embedded emulator and pollers that behave like Lambda's event-source mappings."""
