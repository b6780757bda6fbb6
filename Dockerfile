# One image per service, from one build: `docker build --target billing|tasks|gateway .`
# (docker-compose.yml builds all three). Configuration comes from the environment only.
# Dependency versions come from constraints.txt (`make lock`), as for `make run`: the image holds
# the runtime dependencies only, at the same pins.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ATELIER_DATA_DIR=/data \
    PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CONSTRAINT=/src/constraints.txt
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY protos protos
COPY libs libs
COPY services services
# Generated gRPC code is produced by the build, as `make protos` does (grpcio-tools and
# mypy-protobuf are runtime dependencies; PIP_CONSTRAINT pins them, and hatchling in pip's
# isolated build of the project).
RUN pip install grpcio-tools mypy-protobuf \
 && mkdir -p gen/python \
 && python -m grpc_tools.protoc -I protos --python_out=gen/python --pyi_out=gen/python \
      --grpc_python_out=gen/python --mypy_grpc_out=gen/python $(find protos -name '*.proto') \
 && pip install . \
 && useradd --create-home --uid 10001 atelier && mkdir -p /data && chown atelier /data
USER atelier
WORKDIR /home/atelier

FROM base AS billing
EXPOSE 50051
ENTRYPOINT ["atelier-billing"]
CMD ["serve", "--migrate"]

FROM base AS tasks
EXPOSE 50052
ENTRYPOINT ["atelier-tasks"]
CMD ["serve", "--migrate"]

FROM base AS gateway
EXPOSE 8080
CMD ["sh", "-c", "atelier-gateway migrate && exec atelier-gateway serve"]
