import sys

from benchmarks.streaming import main

sys.exit(main())
