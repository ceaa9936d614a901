# llama.cpp's OpenAI-compatible server for the full example's upstream model (see README.md): the
# site-packages of the llama-cpp-python environment `cargo xtask test` builds, on Debian's Python
# 3.11 (the same ABI). The build context is that environment's site-packages folder.
ARG RUNTIME
FROM ${RUNTIME}
RUN apt-get update && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY . /opt/llama/site-packages
ENV PYTHONPATH=/opt/llama/site-packages
USER 65532:65532
ENTRYPOINT ["python3", "-m", "llama_cpp.server"]
