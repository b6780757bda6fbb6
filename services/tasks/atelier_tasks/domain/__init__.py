"""Task domain: task types and their parameters, the task state machine, events, errors.

Plain Python; may import only the standard library and ``atelier_ports``.
"""
