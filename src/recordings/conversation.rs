//! Conversation figures from the speech of a recording's two sides
//! (docs/recordings.md "Conversation figures"): pure, from the sides'
//! spans ([`super::vad`]) to [`Conversation`].
//!
//! Which side is the agent: the OM device's `send` half is what the
//! recorded extension said (OM manual §4.9), so `send` is the agent unless
//! the device is configured `[[device]] send_side = "remote"`. A stereo
//! WAV's left channel stands for `send`.

use super::vad::{SideSpeech, Span, VadError};
use crate::config::SendSide;
use crate::model::conversation::{Conversation, TalkSegment, TalkSide};

/// Seconds per VAD frame (one G.729 frame).
const FRAME_SECONDS: f64 = 0.01;

/// The figures of a recording whose `send` and `recv` sides spoke `send`
/// and `recv`; an error names the side that has no speech list.
pub fn of_sides(
    send: &SideSpeech,
    recv: &SideSpeech,
    send_side: SendSide,
) -> Result<Conversation, String> {
    let named = |side: &str, s: &SideSpeech| -> Result<Vec<Span>, String> {
        s.clone().map_err(|e: VadError| format!("{side} side: {e}"))
    };
    let (send, recv) = (named("send", send)?, named("recv", recv)?);
    Ok(match send_side {
        SendSide::Extension => figures(&send, &recv),
        SendSide::Remote => figures(&recv, &send),
    })
}

/// The figures of a conversation where the agent spoke `agent` and the
/// customer `customer` (each sorted, not overlapping itself, in frames).
pub fn figures(agent: &[Span], customer: &[Span]) -> Conversation {
    let secs = |frames: u64| frames as f64 * FRAME_SECONDS;
    let talk = |spans: &[Span]| secs(spans.iter().map(|s| s.end - s.start).sum());
    let (agent_talk, customer_talk) = (talk(agent), talk(customer));

    let union = union_of(agent, customer);
    let mut silence = 0;
    let mut longest = 0;
    for w in union.windows(2) {
        let gap = w[1].start - w[0].end;
        silence += gap;
        longest = longest.max(gap);
    }

    let mut segments: Vec<TalkSegment> = agent
        .iter()
        .map(|s| (TalkSide::Agent, s))
        .chain(customer.iter().map(|s| (TalkSide::Customer, s)))
        .map(|(side, s)| TalkSegment {
            side,
            start: secs(s.start),
            end: secs(s.end),
        })
        .collect();
    // Stable: at the same start the agent's comes first.
    segments.sort_by(|a, b| a.start.total_cmp(&b.start));

    Conversation {
        agent_talk_seconds: agent_talk,
        customer_talk_seconds: customer_talk,
        talk_ratio: (agent_talk + customer_talk > 0.0)
            .then(|| agent_talk / (agent_talk + customer_talk)),
        overtalk_seconds: secs(overlap(agent, customer)),
        longest_silence_seconds: secs(longest),
        silence_seconds: secs(silence),
        interruptions: (starts_inside(agent, customer) + starts_inside(customer, agent)) as i64,
        agent_first_word_seconds: agent.first().map(|s| secs(s.start)),
        segments,
    }
}

/// Frames during which both sides speak.
fn overlap(a: &[Span], b: &[Span]) -> u64 {
    let (mut i, mut j, mut total) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        let lo = a[i].start.max(b[j].start);
        let hi = a[i].end.min(b[j].end);
        total += hi.saturating_sub(lo);
        if a[i].end <= b[j].end {
            i += 1;
        } else {
            j += 1;
        }
    }
    total
}

/// Spans of `by` that start while a span of `over` is under way (strictly
/// after it started): `by` interrupted `over`.
fn starts_inside(by: &[Span], over: &[Span]) -> usize {
    let mut j = 0;
    by.iter()
        .filter(|s| {
            while j < over.len() && over[j].end <= s.start {
                j += 1;
            }
            j < over.len() && over[j].start < s.start
        })
        .count()
}

/// The times anybody speaks, as sorted disjoint spans.
fn union_of(a: &[Span], b: &[Span]) -> Vec<Span> {
    let mut all: Vec<Span> = a.iter().chain(b).copied().collect();
    all.sort_by_key(|s| s.start);
    let mut out: Vec<Span> = Vec::with_capacity(all.len());
    for s in all {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(v: &[(u64, u64)]) -> Vec<Span> {
        v.iter().map(|&(start, end)| Span { start, end }).collect()
    }

    #[test]
    fn figures_of_a_dialogue_with_overtalk_and_pauses() {
        // Agent 1.00–3.00 and 6.00–7.00; customer 2.50–4.00 and 8.00–9.50.
        let agent = spans(&[(100, 300), (600, 700)]);
        let customer = spans(&[(250, 400), (800, 950)]);
        let c = figures(&agent, &customer);
        assert!((c.agent_talk_seconds - 3.0).abs() < 1e-9);
        assert!((c.customer_talk_seconds - 3.0).abs() < 1e-9);
        assert!((c.overtalk_seconds - 0.5).abs() < 1e-9);
        // Silences 4.00–6.00 and 7.00–8.00.
        assert!((c.longest_silence_seconds - 2.0).abs() < 1e-9);
        assert!((c.silence_seconds - 3.0).abs() < 1e-9);
        assert_eq!(c.interruptions, 1, "the customer cut in at 2.50");
        assert_eq!(c.agent_first_word_seconds, Some(1.0));
        assert_eq!(c.talk_ratio, Some(0.5));
        let sides: Vec<_> = c.segments.iter().map(|s| (s.side, s.start)).collect();
        assert_eq!(
            sides,
            vec![
                (TalkSide::Agent, 1.0),
                (TalkSide::Customer, 2.5),
                (TalkSide::Agent, 6.0),
                (TalkSide::Customer, 8.0)
            ]
        );
    }

    #[test]
    fn a_silent_agent_has_no_first_word_and_nobody_no_ratio() {
        let c = figures(&[], &spans(&[(50, 150)]));
        assert_eq!(c.agent_first_word_seconds, None);
        assert_eq!(c.talk_ratio, Some(0.0));
        assert_eq!((c.silence_seconds, c.longest_silence_seconds), (0.0, 0.0));
        let nobody = figures(&[], &[]);
        assert_eq!(nobody.talk_ratio, None);
        assert!(nobody.segments.is_empty());
    }

    #[test]
    fn interruptions_count_each_side_starting_over_the_other() {
        // Customer starts inside agent's first span; agent starts inside
        // the customer's second; same starts are not interruptions.
        let agent = spans(&[(0, 100), (320, 400), (500, 560)]);
        let customer = spans(&[(50, 150), (300, 350), (500, 520)]);
        let c = figures(&agent, &customer);
        assert_eq!(c.interruptions, 2);
        assert!((c.overtalk_seconds - (0.5 + 0.3 + 0.2)).abs() < 1e-9);
    }

    #[test]
    fn remote_send_side_swaps_the_parties() {
        let send: SideSpeech = Ok(spans(&[(0, 100)]));
        let recv: SideSpeech = Ok(spans(&[(200, 250)]));
        let ext = of_sides(&send, &recv, SendSide::Extension).unwrap();
        assert!((ext.agent_talk_seconds - 1.0).abs() < 1e-9);
        let remote = of_sides(&send, &recv, SendSide::Remote).unwrap();
        assert!((remote.agent_talk_seconds - 0.5).abs() < 1e-9);
        assert_eq!(remote.agent_first_word_seconds, Some(2.0));
        let bad: SideSpeech = Err(VadError::TooManySpans);
        let err = of_sides(&send, &bad, SendSide::Extension).unwrap_err();
        assert!(err.starts_with("recv side:"), "{err}");
    }

    #[test]
    fn json_rounds_to_two_decimals() {
        let c = figures(&spans(&[(1, 34)]), &spans(&[(40, 41)]));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["agent_talk_seconds"], 0.33);
        assert_eq!(v["talk_ratio"], 0.97);
        assert_eq!(v["segments"][0]["side"], "agent");
        assert_eq!(v["segments"][1]["start"], 0.4);
    }
}
