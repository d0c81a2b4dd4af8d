"""One module per CLI command (or command group); cli.py only wires them together."""
