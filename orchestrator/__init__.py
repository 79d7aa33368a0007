"""taskdisc's orchestrator: specs, Ray Tune sweeps, the result record, MLflow tracking and the CLI."""
