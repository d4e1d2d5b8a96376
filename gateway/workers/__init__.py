"""The fleet: the catalog in force and its worker pool, runtime overlays, health checks, load scrapes, DNS
discovery, local worker processes, model set-up (pulls) on workers, and the one client for workers'
control planes (`control_client`)."""
