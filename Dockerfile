# The worker and the simulator share one image; docker-compose.yml picks the command.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY streams ./streams
COPY schemas ./schemas
RUN pip install --no-cache-dir -e .  # editable: the worker reads schemas/ next to streams/
ENV PYTHONUNBUFFERED=1
CMD ["python", "-m", "streams", "worker", "--loglevel", "info"]
