# The oprc-redis-events CLI: worker, serve, demo, tail, ... (see README.md).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY oprc_redis_events ./oprc_redis_events
RUN pip install --no-cache-dir .
ENTRYPOINT ["oprc-redis-events"]
CMD ["--help"]
