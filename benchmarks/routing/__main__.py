import sys

from benchmarks.routing import main

sys.exit(main())
