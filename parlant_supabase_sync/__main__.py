from parlant_supabase_sync.cli import main

raise SystemExit(main())
