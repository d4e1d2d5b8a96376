"""`llm-gateway`: one module per command group; `entry` parses the command line and dispatches."""
