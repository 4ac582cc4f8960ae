//! The checks every leg gets before it is archived, whichever source sent it
//! (the OM parser, the coocenter, IVR and cloud JSON sources): a plausible
//! span and talk time ([`check_leg`]), and a `<Recording>` value that cannot
//! leave the recorder's directory ([`check_recording_path`], which the
//! recordings stage runs again before it builds a URL or a path).
//!
//! A refused leg is a device fault, not a call: the push is quarantined
//! (ARCHITECTURE.md "Durability") and the leg never reaches the calls stage,
//! which relies on [`MAX_LEG_DAYS`] when it looks back for overlapping legs.
//!
//! The `<Recording>` value (manual §2.6, §4.9) is a path relative to the
//! device's recorder root, shaped
//! `YYYYMMDD/<caller>_<callee>_<date>_<time>_<callid>[_cg|_cd].wav`. It comes
//! from the network, and later stages join it onto a URL
//! (`…/mcc/Recorder/{Recording}`) and onto a local directory, so anything that
//! could climb out of either (`..`, absolute paths, backslashes, control
//! characters, odd characters that URLs or file systems treat specially) is
//! refused, once, for every stage.

use chrono::NaiveDateTime;

use super::{Leg, MAX_LEG_DAYS};

/// Why a leg was refused. Each `Display` is one short line, fit to be an
/// HTTP 400 reason; values quoted from the push are escaped and shortened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    /// TimeEnd more than [`MAX_LEG_DAYS`] after TimeStart, or more than a
    /// day before it: a device clock fault, not a call. Such a leg would
    /// join every call sharing its (recycled) visitor id over the years it
    /// claims, so it is refused and kept in quarantine instead.
    #[error("Cdr {}: TimeEnd {end} is {} TimeStart {start} (a device clock fault?)", short(.cdr_id), span_words(*.start, *.end))]
    ImplausibleSpan {
        cdr_id: String,
        start: NaiveDateTime,
        end: NaiveDateTime,
    },
    /// A talk time longer than the longest leg accepted ([`MAX_LEG_DAYS`]).
    #[error("Cdr {}: Duration {seconds} s is more than {MAX_LEG_DAYS} days (a device fault?)", short(.cdr_id))]
    ImplausibleDuration { cdr_id: String, seconds: i64 },
    /// A `<Recording>` value that could escape the recorder directory.
    #[error("Cdr {}: unsafe Recording {}: {reason}", short(.cdr_id), short(.value))]
    UnsafeRecording {
        cdr_id: String,
        value: String,
        reason: UnsafePath,
    },
}

/// Checks `leg` as every source must before archiving it: its span
/// ([`check_span`]), its talk time, and its recording path.
pub fn check_leg(leg: &Leg) -> Result<(), LegError> {
    check_span(&leg.cdr_id, leg.time_start, leg.time_end)?;
    if leg.duration > MAX_LEG_DAYS * 86_400 {
        // Summed by every report: one leg of i64::MAX seconds made
        // SQLite's SUM fail ("integer overflow") for its whole day.
        return Err(LegError::ImplausibleDuration {
            cdr_id: leg.cdr_id.clone(),
            seconds: leg.duration,
        });
    }
    if let Some(path) = &leg.recording {
        check_recording_path(path).map_err(|reason| LegError::UnsafeRecording {
            cdr_id: leg.cdr_id.clone(),
            value: path.clone(),
            reason,
        })?;
    }
    Ok(())
}

/// A span longer than [`MAX_LEG_DAYS`], or ending more than a day before
/// it starts, is a device clock fault, not a call. Public so that a parser
/// can refuse it before reading the leg's other fields.
pub fn check_span(cdr_id: &str, start: NaiveDateTime, end: NaiveDateTime) -> Result<(), LegError> {
    let span = end - start;
    if span > chrono::Duration::days(MAX_LEG_DAYS) || span < -chrono::Duration::days(1) {
        return Err(LegError::ImplausibleSpan {
            cdr_id: cdr_id.to_string(),
            start,
            end,
        });
    }
    Ok(())
}

/// "3 days after" / "2 days before" / "26 hours after", for refusals.
fn span_words(start: NaiveDateTime, end: NaiveDateTime) -> String {
    let secs = (end - start).num_seconds();
    let (n, dir) = (
        secs.unsigned_abs(),
        if secs < 0 { "before" } else { "after" },
    );
    if n >= 2 * 86_400 {
        format!("{} days {dir}", n / 86_400)
    } else {
        format!("{} hours {dir}", n / 3_600)
    }
}

/// A value from a push made safe for a one-line error message: escaped
/// (no newlines) and cut to a readable length.
pub(crate) fn short(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    let mut cut: String = value.chars().take(MAX_CHARS).collect();
    if cut.len() < value.len() {
        cut.push('…');
    }
    cut.escape_debug().to_string()
}

/// Longest value accepted. The manual's names are ~60 bytes; 255 leaves room
/// for long numbers while keeping every component under common file-name limits.
pub const MAX_RECORDING_LEN: usize = 255;

/// At most `YYYYMMDD/<file>`: a day directory and a file name.
const MAX_COMPONENTS: usize = 2;

/// Why a `<Recording>` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafePath {
    /// The value is empty (or only spaces).
    #[error("empty path")]
    Empty,
    /// Longer than [`MAX_RECORDING_LEN`] bytes.
    #[error("path too long ({len} bytes)")]
    TooLong { len: usize },
    /// Contains NUL or another control character (tab, newline, DEL, …).
    #[error("control character in path")]
    ControlChar,
    /// Contains `\`, a path separator on Windows.
    #[error("backslash in path")]
    Backslash,
    /// Starts with `/`.
    #[error("absolute path")]
    Absolute,
    /// `a//b` or a trailing `/`.
    #[error("empty path component")]
    EmptyComponent,
    /// A component that is `.`, `..` or starts with a dot (hidden file).
    #[error("dot path component")]
    DotComponent,
    /// More components than `YYYYMMDD/<file>`.
    #[error("too many path components ({count})")]
    TooManyComponents { count: usize },
    /// A character outside letters, digits, `_`, `-` and `.`.
    #[error("character {0:?} not allowed in path")]
    BadChar(char),
}

/// Accepts `YYYYMMDD/<file>` (or a bare `<file>`) made of ASCII letters,
/// digits, `_`, `-` and `.`; refuses everything else (see [`UnsafePath`]).
pub fn check_recording_path(s: &str) -> Result<(), UnsafePath> {
    if s.trim().is_empty() {
        return Err(UnsafePath::Empty);
    }
    if s.len() > MAX_RECORDING_LEN {
        return Err(UnsafePath::TooLong { len: s.len() });
    }
    if s.chars().any(char::is_control) {
        return Err(UnsafePath::ControlChar);
    }
    if s.contains('\\') {
        return Err(UnsafePath::Backslash);
    }
    if s.starts_with('/') {
        return Err(UnsafePath::Absolute);
    }
    let mut count = 0;
    for component in s.split('/') {
        count += 1;
        check_component(component)?;
    }
    if count > MAX_COMPONENTS {
        return Err(UnsafePath::TooManyComponents { count });
    }
    Ok(())
}

fn check_component(component: &str) -> Result<(), UnsafePath> {
    if component.is_empty() {
        return Err(UnsafePath::EmptyComponent);
    }
    // `.`, `..` and hidden names; a leading dot is never part of the manual's shape.
    if component.starts_with('.') {
        return Err(UnsafePath::DotComponent);
    }
    match component
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        Some(c) => Err(UnsafePath::BadChar(c)),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(start: &str, end: &str, duration: i64, recording: Option<&str>) -> Leg {
        let t = |s: &str| NaiveDateTime::parse_from_str(s, crate::model::OM_TIME_FORMAT).unwrap();
        Leg {
            cdr_id: "1-0".into(),
            callid: "1".into(),
            visitor_id: None,
            outer_id: None,
            leg_type: "IN".into(),
            route: "IC".into(),
            cpn: "200".into(),
            cdpn: "201".into(),
            time_start: t(start),
            time_end: t(end),
            duration,
            trunk_number: String::new(),
            recording: recording.map(str::to_string),
            rec_codec: None,
            mac: None,
        }
    }

    #[test]
    fn check_leg_accepts_a_week_and_a_clock_stepped_back() {
        let week = leg("20170301000000", "20170308000000", 7 * 86_400, None);
        assert_eq!(check_leg(&week), Ok(()));
        let back = leg(
            "20170308103709",
            "20170308093709",
            0,
            Some("20170308/a.wav"),
        );
        assert_eq!(check_leg(&back), Ok(()));
    }

    #[test]
    fn check_leg_refuses_spans_over_a_week_or_ending_days_early() {
        for (start, end) in [
            ("20170301000000", "20170308000001"),
            ("20170308103709", "20170306103709"),
        ] {
            let refused = check_leg(&leg(start, end, 0, None));
            assert!(
                matches!(refused, Err(LegError::ImplausibleSpan { .. })),
                "{start} {end}"
            );
        }
    }

    #[test]
    fn check_leg_refuses_talk_time_over_a_week() {
        let long = leg("20170308103709", "20170308103713", 7 * 86_400 + 1, None);
        assert_eq!(
            check_leg(&long).unwrap_err().to_string(),
            "Cdr 1-0: Duration 604801 s is more than 7 days (a device fault?)"
        );
    }

    #[test]
    fn check_leg_refuses_unsafe_recording() {
        let unsafe_path = leg("20170308103709", "20170308103713", 2, Some("../x.wav"));
        assert!(matches!(
            check_leg(&unsafe_path),
            Err(LegError::UnsafeRecording {
                reason: UnsafePath::DotComponent,
                ..
            })
        ));
    }

    #[test]
    fn check_recording_path_accepts_manual_shapes() {
        for ok in [
            "20170308/200_201_20170308_103711_8034_cd.wav",
            "20170309/18201008888_02161205555_20170309_175313_805D_cg.wav",
            "20150827/211_210_20150827_135634_000a_cg.wav",
            "20170706/201_3_20170706_155709_A00B_cg.wav",
            "a-b.wav",
        ] {
            assert_eq!(check_recording_path(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn check_recording_path_rejects_parent_components() {
        assert_eq!(
            check_recording_path("../../etc/passwd"),
            Err(UnsafePath::DotComponent)
        );
        assert_eq!(
            check_recording_path("20170309/.."),
            Err(UnsafePath::DotComponent)
        );
    }

    #[test]
    fn check_recording_path_rejects_hidden_and_current_dir() {
        assert_eq!(
            check_recording_path("./a.wav"),
            Err(UnsafePath::DotComponent)
        );
        assert_eq!(
            check_recording_path("20170309/.htaccess"),
            Err(UnsafePath::DotComponent)
        );
    }

    #[test]
    fn check_recording_path_rejects_absolute() {
        assert_eq!(
            check_recording_path("/etc/passwd"),
            Err(UnsafePath::Absolute)
        );
    }

    #[test]
    fn check_recording_path_rejects_nul_and_control() {
        assert_eq!(
            check_recording_path("20170309/a\0b.wav"),
            Err(UnsafePath::ControlChar)
        );
        assert_eq!(
            check_recording_path("20170309/a_cg.w\nav"),
            Err(UnsafePath::ControlChar)
        );
    }

    #[test]
    fn check_recording_path_rejects_backslash() {
        assert_eq!(
            check_recording_path("20170309\\a.wav"),
            Err(UnsafePath::Backslash)
        );
        assert_eq!(
            check_recording_path("..\\..\\windows"),
            Err(UnsafePath::Backslash)
        );
    }

    #[test]
    fn check_recording_path_rejects_empty_components() {
        assert_eq!(
            check_recording_path("20170309//a.wav"),
            Err(UnsafePath::EmptyComponent)
        );
        assert_eq!(
            check_recording_path("20170309/"),
            Err(UnsafePath::EmptyComponent)
        );
    }

    #[test]
    fn check_recording_path_rejects_three_components() {
        assert_eq!(
            check_recording_path("2017/0309/a.wav"),
            Err(UnsafePath::TooManyComponents { count: 3 })
        );
    }

    #[test]
    fn check_recording_path_rejects_over_long() {
        let long = format!("20170309/{}.wav", "9".repeat(MAX_RECORDING_LEN));
        assert_eq!(
            check_recording_path(&long),
            Err(UnsafePath::TooLong { len: long.len() })
        );
    }

    #[test]
    fn check_recording_path_rejects_odd_characters() {
        assert_eq!(
            check_recording_path("20170309/a b.wav"),
            Err(UnsafePath::BadChar(' '))
        );
        assert_eq!(
            check_recording_path("20170309/a.wav?x=1"),
            Err(UnsafePath::BadChar('?'))
        );
        assert_eq!(
            check_recording_path("C:/a.wav"),
            Err(UnsafePath::BadChar(':'))
        );
    }

    #[test]
    fn check_recording_path_rejects_empty() {
        assert_eq!(check_recording_path(""), Err(UnsafePath::Empty));
        assert_eq!(check_recording_path("  "), Err(UnsafePath::Empty));
    }
}
