"""The fleet: the catalog in force and its worker pool, runtime overlays, health checks, load scrapes, DNS
discovery, local worker processes, and model set-up (pulls) on workers."""
