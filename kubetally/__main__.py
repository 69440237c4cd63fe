from kubetally.cli import main

raise SystemExit(main())
