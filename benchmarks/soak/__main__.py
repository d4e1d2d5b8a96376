import sys

from benchmarks.soak import main

sys.exit(main())
