"""Fixtures live in plugin modules under devtools/xray_dev so each tier can share them."""

pytest_plugins = [
    "xray_dev.fixtures_cluster",
    "xray_dev.fixtures_aws",
    "xray_dev.fixtures_trace",
]
