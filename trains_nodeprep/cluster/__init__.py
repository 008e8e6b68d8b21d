"""The cluster side: kubectl (the only subprocess to it), pure pre-checks and pod readings, deploy.

Imported lazily by the commands that reach a cluster, so `--help` and a run without a cluster
never load it.
"""
