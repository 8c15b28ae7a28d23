"""The compiled fast path and IPv4 reader, built where a C compiler is at hand.

Everything else about the package is in pyproject.toml. ``optional=True``:
where the extension cannot be built (no compiler, no Python headers), the
install goes on without it and answer.py serves with its Python fast path.
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("dnsbl._fastpath", ["dnsbl/_fastpath.c"], optional=True,
              depends=["dnsbl/datasets/_ip4index.h"]),
    # Reading IPv4 lists (datasets/ip4.py): its Python reader is the fallback.
    Extension("dnsbl.datasets._ip4scan", ["dnsbl/datasets/_ip4scan.c"], optional=True),
    # An IPv4 dataset's lookup, which _fastpath calls: without it _fastpath
    # calls the Python lookup.
    Extension("dnsbl.datasets._ip4index", ["dnsbl/datasets/_ip4index.c"], optional=True,
              depends=["dnsbl/datasets/_ip4index.h"]),
])
