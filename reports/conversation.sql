-- name: conversation
-- description: Per agent and day, over settled calls with conversation figures (docs/recordings.md):
-- description: calls, average talk ratio, total and average overtalk seconds, longest silence.
-- description: The agent is the extension of the recorded leg: the callee of an inbound or internal
-- description: leg, the caller of an outbound or callback one.
-- params: from, to
WITH c AS (
    SELECT seq, substr(start_local, 1, 10) AS day
    FROM calls
    WHERE start_local >= :from AND start_local < :to_next
      AND (:devices = '[]' OR device IN (SELECT value FROM json_each(:devices)))
      AND last_change_ms <= :settled_before_ms
),
v AS (
    SELECT c.day, c.seq,
           CASE WHEN l.leg_type IN ('OU', 'CB') THEN l.cpn ELSE l.cdpn END AS agent,
           f.talk_ratio, f.overtalk_seconds, f.longest_silence_seconds
    FROM c
    JOIN call_legs cl ON cl.call_seq = c.seq
    JOIN legs l ON l.id = cl.leg_id
    JOIN recordings r ON r.leg_id = l.id
    JOIN conversations f ON f.recording_id = r.id AND f.status = 'ok'
)
SELECT agent, day,
       count(DISTINCT seq) AS calls,
       round(avg(talk_ratio), 2) AS avg_talk_ratio,
       round(sum(overtalk_seconds), 2) AS overtalk_seconds,
       round(avg(overtalk_seconds), 2) AS avg_overtalk_seconds,
       max(longest_silence_seconds) AS longest_silence_seconds
FROM v
GROUP BY agent, day
ORDER BY agent, day;
