"""The tasks service: generation tasks, their attempts, result images and uploads.

Layers (checked by import-linter): ``entrypoints`` > ``bootstrap`` > ``adapters`` > ``application``
> ``domain``. The core (domain, application) depends only on ``atelier_ports`` and the standard
library.
"""
