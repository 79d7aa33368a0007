"""Tags that name a trial's MLflow run, in a module of their own: trial actors import them without MLflow."""
KEY_TAG = "taskdisc.key"  # a child run's trial key: what makes "one run per trial" checkable
RUN_TAG = "taskdisc.run"  # a child run's full name (its MLflow name is short enough for the runs table)
