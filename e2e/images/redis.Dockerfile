# A stand-in for redis:7.2-alpine (see README.md): Redis from Debian, with the official image's
# working directory and a command line that starts with the server's own arguments.
ARG RUNTIME
FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /data
USER 999:999
ENTRYPOINT ["redis-server"]
