-- The queue visits of one call (the call's detail view, GET /api/calls/{id})
-- were found by reading every visit ever stored. Only visits linked to a
-- call are indexed: the rest never match that look-up.
CREATE INDEX queue_visits_call ON queue_visits(call_id) WHERE call_id IS NOT NULL;
