import sys

from benchmarks.local_worker import main

sys.exit(main())
