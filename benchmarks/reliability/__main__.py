from benchmarks.reliability import main

raise SystemExit(main())
