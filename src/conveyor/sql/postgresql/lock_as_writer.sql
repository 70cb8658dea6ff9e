-- The lock an UPDATE takes: a session holding a stronger one (a SHARE lock such as CREATE
-- INDEX's) that stops heartbeats stops the rescuer too.
LOCK TABLE conveyor_jobs IN ROW EXCLUSIVE MODE
