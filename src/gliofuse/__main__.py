from gliofuse.cli import main

raise SystemExit(main())
