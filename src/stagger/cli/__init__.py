"""The operator CLI: one module per command group; every command has --json."""
