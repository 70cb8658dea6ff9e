-- Limited claims are serialized across every worker, for the rest of the transaction: the
-- running jobs a limit counts cannot change under a claim that is deciding by them.
SELECT pg_advisory_xact_lock(7242163914075318873) AS locked
