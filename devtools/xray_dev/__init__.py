"""Development and test tooling: the local control plane, moto, process helpers."""
