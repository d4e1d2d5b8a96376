"""`python -m simulator`: serve a simulated vLLM or Ollama worker (see `simulator.cli`)."""

import sys

from simulator.cli import main

sys.exit(main())
