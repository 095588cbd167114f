from shared.local.cli import main

raise SystemExit(main())
