"""Names of a sweep's MLflow runs, in a module of their own: trial actors and `taskdisc results` import
them without MLflow."""
KEY_TAG = "taskdisc.key"  # a child run's trial key: what makes "one run per trial" checkable
RUN_TAG = "taskdisc.run"  # a child run's full name (its MLflow name is short enough for the runs table)
PARENT = "__sweep__"  # the sweep's own run, where a sweep's log addresses trials by key
