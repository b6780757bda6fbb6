"""Inbound adapters of the tasks service: the gRPC servicer, the server runner and the CLI."""
