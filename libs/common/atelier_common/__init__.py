"""Infrastructure shared by the services' outer layers: database engines, the gRPC server
factory with internal auth and the one error table, call context, logging, and the local object
store's on-disk format and signatures (written by tasks, served by the gateway).

Only adapters, entrypoints and composition roots may import this package; domain and application
code may not (import-linter).
"""
