"""The benchmark harness (`make bench`): the operator against the floor a plain client sets on
the same local API server. See BENCHMARKS.md for the method and the latest figures."""
