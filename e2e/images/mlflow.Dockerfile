# A stand-in for ghcr.io/mlflow/mlflow (see README.md): the site-packages of the MLflow environment
# `cargo xtask test` builds for its own MLflow server (the build context), on Debian's Python 3.11
# (the same ABI), with `mlflow` on PATH as in the official image.
ARG RUNTIME
FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends python3 \
    && rm -rf /var/lib/apt/lists/* \
    && printf '#!/bin/sh\nexec python3 -m mlflow "$@"\n' > /usr/local/bin/mlflow \
    && chmod 755 /usr/local/bin/mlflow
COPY . /opt/mlflow/site-packages
ENV PYTHONPATH=/opt/mlflow/site-packages
USER 65532:65532
