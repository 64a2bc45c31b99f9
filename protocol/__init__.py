"""The wire contract on the host: construct definitions of every frame (the source of truth), SPEC.md, golden vectors."""
