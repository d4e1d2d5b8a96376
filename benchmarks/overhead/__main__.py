import sys

from benchmarks.overhead import main

sys.exit(main())
