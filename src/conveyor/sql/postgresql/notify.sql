-- Delivered when the transaction commits; the payload names the queue, nothing more.
SELECT pg_notify(:channel, :queue)
