from calmtunes.cli import main

raise SystemExit(main())
