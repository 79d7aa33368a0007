"""Plain-PyTorch core of taskdisc: datasets, models, tasks, pair training, discovery.

Nothing in this package imports Ray or MLflow; the orchestrator adapts it.
"""
