# One image per service, from one build: `docker build --target billing|tasks|gateway .`
# (docker-compose.yml builds all three). Configuration comes from the environment only.
FROM python:3.11-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 ATELIER_DATA_DIR=/data
WORKDIR /src
COPY pyproject.toml README.md ./
COPY protos protos
COPY libs libs
COPY services services
# Generated gRPC code is produced by the build, as `make protos` does.
RUN pip install --no-cache-dir "grpcio-tools>=1.66" \
 && mkdir -p gen/python \
 && python -m grpc_tools.protoc -I protos --python_out=gen/python --pyi_out=gen/python \
      --grpc_python_out=gen/python $(find protos -name '*.proto') \
 && pip install --no-cache-dir . \
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
