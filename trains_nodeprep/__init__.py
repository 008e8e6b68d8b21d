"""trains-nodeprep: get a Kubernetes node ready for trains-server, safely."""

__version__ = "0.1.0"
