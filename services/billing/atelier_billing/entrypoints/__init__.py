"""Billing entrypoints: the gRPC servicer and the command line."""
