# A stand-in for quay.io/prometheus/alertmanager (see README.md): Debian's Alertmanager 0.25, run
# by the Prometheus Operator's StatefulSet, which passes every flag; the official image's user.
ARG RUNTIME
FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends prometheus-alertmanager \
    && rm -rf /var/lib/apt/lists/*
USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus-alertmanager"]
