# PostgreSQL 15 from Debian for the full example's database (see README.md). On first start it
# creates a cluster in $PGDATA whose superuser is $POSTGRES_USER with $POSTGRES_PASSWORD, reached
# over the network with SCRAM passwords only.
ARG RUNTIME
FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/*
COPY postgres-start.sh /usr/local/bin/postgres-start
USER postgres
ENV PGDATA=/var/lib/postgresql/data
ENTRYPOINT ["/bin/sh", "/usr/local/bin/postgres-start"]
