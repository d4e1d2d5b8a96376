import sys

from benchmarks.streaming_scale import main

sys.exit(main())
