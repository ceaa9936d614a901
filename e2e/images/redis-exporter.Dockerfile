# A stand-in for oliver006/redis_exporter (see README.md): Debian's build of the same exporter,
# which reads REDIS_ADDR and serves /metrics and /health on :9121.
ARG RUNTIME
FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends prometheus-redis-exporter \
    && rm -rf /var/lib/apt/lists/*
USER 65532:65532
ENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]
