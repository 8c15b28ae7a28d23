"""dnsbl: a fast DNSBL server for rbldnsd-format zones."""

__version__ = "0.1.0"
