"""The worker's web views (Faust web): provider webhooks."""
