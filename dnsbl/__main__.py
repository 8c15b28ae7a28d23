"""`python -m dnsbl`."""

from dnsbl.cli import main

raise SystemExit(main())
