-- The table lock every UPDATE takes. A rescuer takes it before it looks at or takes back a
-- lease: whatever stops heartbeats from writing (CREATE INDEX, LOCK TABLE ... IN SHARE MODE
-- and stronger) then stops the rescuer too, and its watch starts over (lease_watch.py).
LOCK TABLE conveyor_jobs IN ROW EXCLUSIVE MODE
