"""What a sweep remembers: the MLflow runs and its own record of finished trials."""
