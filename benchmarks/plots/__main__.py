import sys

from benchmarks.plots import main

sys.exit(main(sys.argv[1:]))
