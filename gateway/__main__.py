import sys

from gateway.cli.entry import main

sys.exit(main())
