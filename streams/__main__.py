"""``python -m streams worker`` runs a worker (Faust's CLI)."""
from streams.app import app
import streams.agents.requests  # noqa: F401  (registers the agent)

if __name__ == "__main__":
    app.main()
