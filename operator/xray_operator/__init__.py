"""xray-operator: AWS X-Ray tracing for Kubernetes workloads without hand-kept YAML."""

__version__ = "0.1.0"
