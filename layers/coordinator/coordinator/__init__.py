"""callback-coordinator's runtime package, shipped in the Lambda layer.

The table protocol (`table`), the process / update-state / dispatcher / reconcile flows that use
it, payload identities, and cron ranges for backfills. Handlers in `functions/` stay thin and
call into here.
"""
