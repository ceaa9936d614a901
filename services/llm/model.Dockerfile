# syntax=docker/dockerfile:1
# A model image for the LLM service: one GGUF file at /models/<MODEL>.gguf, and `cp` for the init
# container the operator adds to the LLM pod to copy it out (FlashcardStack
# spec.llm.local.image; the default tag is <registry>/flashcards-model-<MODEL>:<version>). Built
# from a folder holding <MODEL>.gguf:
#   docker build -f services/llm/model.Dockerfile --build-arg MODEL=qwen2.5-coder-0.5b-instruct <folder>
# RUNTIME names another base with `cp` where Debian's image cannot be pulled (`cargo xtask images`).
ARG RUNTIME=debian:bookworm-slim

FROM ${RUNTIME}
ARG MODEL
COPY ${MODEL}.gguf /models/${MODEL}.gguf
USER 65532:65532
