"""Sweep specs: frozen dataclasses loaded from YAML, validated before Ray starts."""
