"""AWS fixtures: a moto server on loopback reached through boto3 (filled in by the IAM work)."""
