"""``make bench``: the product's figures against ceilings outside its code, in one run.

Not a test and not part of ``make test``; see ``bench/__main__.py`` and the README's "make bench".
The pure pieces (wrk and pgbench output parsers, script builders, /proc parsing, the report) are
unit-tested in ``tests/project/unit/test_bench_harness.py``.
"""
