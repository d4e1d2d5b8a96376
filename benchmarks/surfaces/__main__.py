import sys

from benchmarks.surfaces import main

sys.exit(main())
