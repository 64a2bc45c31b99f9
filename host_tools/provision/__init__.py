"""Provisioning real boards: rig file (TOML) check, precompile, copy with mpremote."""
