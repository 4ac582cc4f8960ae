-- The fetcher takes due jobs from each device in turn (README "Fetcher
-- limits"): it walks the devices with pending rows and, per device, the
-- oldest due rows, both straight off this index.
CREATE INDEX recordings_device_due ON recordings(status, device, due_ms);
