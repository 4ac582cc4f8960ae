//! A `<Cdr>` document (manual §2.6) into a [`Leg`]: fields matched
//! case-insensitively, values trimmed, times read as `YYYYMMDDhhmmss`, and
//! the result put through the checks every leg gets ([`check_leg`]).

use chrono::NaiveDateTime;

use super::xml::Tree;
use super::{non_empty, ParseError};
use crate::model::checks::check_span;
use crate::model::{attr_of, check_leg, Leg, OM_TIME_FORMAT};

pub(super) fn build_leg(tree: &Tree) -> Result<Leg, ParseError> {
    let cdr_id = tree
        .attr("id")
        .filter(|id| !id.is_empty())
        .ok_or(ParseError::MissingCdrId)?
        .to_string();
    let mut fields = CdrFields::default();
    for child in tree.direct_children() {
        // The manual's tags are mixed case (`TimeStart`, `callid`) and firmware
        // varies (`Recording` / `recording`): match case-insensitively.
        let slot = match child.tag.to_ascii_lowercase().as_str() {
            "callid" => &mut fields.callid,
            "timestart" => &mut fields.time_start,
            "timeend" => &mut fields.time_end,
            "type" => &mut fields.leg_type,
            "route" => &mut fields.route,
            "cpn" => &mut fields.cpn,
            "cdpn" => &mut fields.cdpn,
            "duration" => &mut fields.duration,
            "trunknumber" => &mut fields.trunk_number,
            "recording" => &mut fields.recording,
            "reccodec" => &mut fields.rec_codec,
            "mac" => &mut fields.mac,
            "visitor" => {
                fields.visitor_id = attr_of(&child.attrs, "id").map(str::to_string);
                continue;
            }
            "outer" => {
                fields.outer_id = attr_of(&child.attrs, "id").map(str::to_string);
                continue;
            }
            _ => {
                tracing::debug!(cdr_id = %cdr_id, tag = %child.tag, "ignoring unknown Cdr field");
                continue;
            }
        };
        *slot = Some(child.text.trim().to_string());
    }
    fields.into_leg(cdr_id)
}

/// The text of each CDR field as found, before validation.
#[derive(Default)]
struct CdrFields {
    callid: Option<String>,
    visitor_id: Option<String>,
    outer_id: Option<String>,
    leg_type: Option<String>,
    route: Option<String>,
    cpn: Option<String>,
    cdpn: Option<String>,
    time_start: Option<String>,
    time_end: Option<String>,
    duration: Option<String>,
    trunk_number: Option<String>,
    recording: Option<String>,
    rec_codec: Option<String>,
    mac: Option<String>,
}

impl CdrFields {
    fn into_leg(self, cdr_id: String) -> Result<Leg, ParseError> {
        let time_start = om_time(&cdr_id, "TimeStart", self.time_start)?;
        let time_end = om_time(&cdr_id, "TimeEnd", self.time_end)?;
        check_span(&cdr_id, time_start, time_end)?;
        let duration_text = required(&cdr_id, "Duration", self.duration)?;
        let duration = duration_text
            .parse::<i64>()
            .ok()
            .filter(|seconds| *seconds >= 0)
            .ok_or_else(|| ParseError::InvalidField {
                cdr_id: cdr_id.clone(),
                field: "Duration",
                value: duration_text.clone(),
            })?;
        let leg = Leg {
            callid: self.callid.unwrap_or_default(),
            visitor_id: non_empty(self.visitor_id),
            outer_id: non_empty(self.outer_id),
            leg_type: self.leg_type.unwrap_or_default().into(),
            route: self.route.unwrap_or_default().to_ascii_uppercase(),
            cpn: self.cpn.unwrap_or_default(),
            cdpn: self.cdpn.unwrap_or_default(),
            time_start,
            time_end,
            duration,
            trunk_number: self.trunk_number.unwrap_or_default(),
            recording: non_empty(self.recording),
            rec_codec: non_empty(self.rec_codec).map(|codec| codec.to_ascii_uppercase()),
            mac: non_empty(self.mac),
            cdr_id,
        };
        check_leg(&leg)?;
        Ok(leg)
    }
}

fn required(
    cdr_id: &str,
    field: &'static str,
    value: Option<String>,
) -> Result<String, ParseError> {
    non_empty(value).ok_or_else(|| ParseError::MissingField {
        cdr_id: cdr_id.to_string(),
        field,
    })
}

fn om_time(
    cdr_id: &str,
    field: &'static str,
    value: Option<String>,
) -> Result<NaiveDateTime, ParseError> {
    let text = required(cdr_id, field, value)?;
    digits_time(&text)
        .map(Ok)
        .unwrap_or_else(|| NaiveDateTime::parse_from_str(&text, OM_TIME_FORMAT))
        .map_err(|_| ParseError::InvalidField {
            cdr_id: cdr_id.to_string(),
            field,
            value: text,
        })
}

/// `YYYYMMDDhhmmss` read digit by digit: chrono's format-string parser was
/// a tenth of the parse time of a CDR. Anything else (or an invalid date)
/// is left to chrono, so what is accepted and refused does not change.
fn digits_time(s: &str) -> Option<NaiveDateTime> {
    let b = s.as_bytes();
    if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let num = |from: usize, to: usize| {
        b[from..to]
            .iter()
            .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'))
    };
    chrono::NaiveDate::from_ymd_opt(num(0, 4) as i32, num(4, 6), num(6, 8))?.and_hms_opt(
        num(8, 10),
        num(10, 12),
        num(12, 14),
    )
}

#[cfg(test)]
mod tests {
    use super::super::samples::*;
    use super::super::{parse_body, ParseError};
    use super::*;
    use crate::model::{LegError, UnsafePath};

    #[test]
    fn parse_body_accepts_lower_case_cdr_tags() {
        let leg = only_leg(&cdr_with(
            "<recording>20170308/a_cd.wav</recording><reccodec>g729</reccodec>",
        ));
        assert_eq!(leg.recording.as_deref(), Some("20170308/a_cd.wav"));
        assert_eq!(leg.rec_codec.as_deref(), Some("G729"));
    }

    #[test]
    fn parse_body_trims_cdr_values() {
        let leg = only_leg(&cdr_with("<callid> 32820 </callid><Type> in </Type>"));
        assert_eq!(
            (leg.callid.as_str(), leg.leg_type.as_str()),
            ("32820", "IN")
        );
    }

    #[test]
    fn parse_body_ignores_unknown_cdr_fields() {
        let leg = only_leg(&cdr_with("<Future a=\"1\">x</Future>"));
        assert_eq!(leg.cdr_id, "1-0");
    }

    #[test]
    fn parse_body_rejects_cdr_without_id() {
        let body = cdr_with("").replace(r#" id="1-0""#, "");
        assert_eq!(parse_body(&body), Err(ParseError::MissingCdrId));
        let body = cdr_with("").replace(r#"id="1-0""#, r#"id="""#);
        assert_eq!(parse_body(&body), Err(ParseError::MissingCdrId));
    }

    #[test]
    fn parse_body_rejects_missing_time_end() {
        let body = cdr_with("").replace("<TimeEnd>20170308103713</TimeEnd>", "");
        assert_eq!(
            parse_body(&body),
            Err(ParseError::MissingField {
                cdr_id: "1-0".into(),
                field: "TimeEnd"
            })
        );
    }

    #[test]
    fn parse_body_rejects_invalid_time_start() {
        let body = cdr_with("").replace("20170308103709", "2017-03-08 10:37");
        let err = parse_body(&body).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"Cdr 1-0: invalid <TimeStart> 2017-03-08 10:37"#
        );
    }

    #[test]
    fn parse_body_refuses_legs_spanning_years_or_ending_days_before_they_start() {
        let with = |start: &str, end: &str| {
            parse_body(
                &cdr_with("")
                    .replace("20170308103709", start)
                    .replace("20170308103713", end),
            )
        };
        assert_eq!(
            with("20170308103709", "99991231235959").unwrap_err().to_string(),
            "Cdr 1-0: TimeEnd 9999-12-31 23:59:59 is 2915663 days after TimeStart 2017-03-08 10:37:09 (a device clock fault?)"
        );
        assert_eq!(
            with("20170308103709", "20170306103709").unwrap_err().to_string(),
            "Cdr 1-0: TimeEnd 2017-03-06 10:37:09 is 2 days before TimeStart 2017-03-08 10:37:09 (a device clock fault?)"
        );
        assert!(matches!(
            with("20170301000000", "20170308000001"),
            Err(ParseError::Leg(LegError::ImplausibleSpan { .. }))
        ));
        let long_talk = cdr_with("").replace(
            "<Duration>2</Duration>",
            "<Duration>9223372036854775807</Duration>",
        );
        assert_eq!(
            parse_body(&long_talk).unwrap_err().to_string(),
            "Cdr 1-0: Duration 9223372036854775807 s is more than 7 days (a device fault?)"
        );
        // A week, and a clock stepped back an hour during the call: kept.
        for (start, end) in [
            ("20170301000000", "20170308000000"),
            ("20170308103709", "20170308093709"),
        ] {
            assert!(with(start, end).is_ok(), "{start} {end}");
        }
    }

    #[test]
    fn parse_body_rejects_impossible_date() {
        let body = cdr_with("").replace("20170308103709", "20170230103709");
        assert!(matches!(
            parse_body(&body),
            Err(ParseError::InvalidField {
                field: "TimeStart",
                ..
            })
        ));
    }

    #[test]
    fn parse_body_rejects_bad_duration() {
        for bad in ["<Duration>2s</Duration>", "<Duration>-1</Duration>"] {
            let body = cdr_with("").replace("<Duration>2</Duration>", bad);
            assert!(
                matches!(
                    parse_body(&body),
                    Err(ParseError::InvalidField {
                        field: "Duration",
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn parse_body_rejects_missing_duration() {
        let body = cdr_with("").replace("<Duration>2</Duration>", "<Duration></Duration>");
        assert!(matches!(
            parse_body(&body),
            Err(ParseError::MissingField {
                field: "Duration",
                ..
            })
        ));
    }

    #[test]
    fn parse_body_rejects_unsafe_recordings() {
        let cases = [
            ("../../etc/passwd", UnsafePath::DotComponent),
            ("/etc/passwd", UnsafePath::Absolute),
            ("20170309/a&#1;b.wav", UnsafePath::ControlChar),
            ("20170309\\a.wav", UnsafePath::Backslash),
        ];
        for (value, reason) in cases {
            let body = cdr_with(&format!("<Recording>{value}</Recording>"));
            match parse_body(&body) {
                Err(ParseError::Leg(LegError::UnsafeRecording { reason: got, .. })) => {
                    assert_eq!(got, reason, "{value}")
                }
                other => panic!("{value}: {other:?}"),
            }
        }
    }

    #[test]
    fn parse_body_rejects_raw_nul_in_recording() {
        let body = cdr_with("<Recording>20170309/a\0b.wav</Recording>");
        let err = parse_body(&body).unwrap_err();
        assert!(
            matches!(
                err,
                ParseError::Leg(LegError::UnsafeRecording {
                    reason: UnsafePath::ControlChar,
                    ..
                })
            ),
            "{err:?}"
        );
        assert!(!err.to_string().contains('\0'));
    }

    #[test]
    fn parse_body_treats_empty_recording_as_none() {
        let leg = only_leg(&cdr_with("<Recording> </Recording><RecCodec></RecCodec>"));
        assert_eq!((leg.recording, leg.rec_codec), (None, None));
    }

    /// The digit fast path gives exactly what chrono's format parser gives,
    /// valid or not (leap seconds, Feb 29, hour 24, short, signs, spaces).
    #[test]
    fn om_time_fast_path_agrees_with_chrono() {
        for t in [
            "20170309162708",
            "20820101000000",
            "20240229235959",
            "20230229120000",
            "20240101240000",
            "20241231235960",
            "00000101000000",
            "99991231235959",
            "2024010112000",
            "202401011200000",
            "+2024010112000",
            "2024 101120000",
            "20241301120000",
            "20240132120000",
            "20240101126100",
        ] {
            let fast = match digits_time(t) {
                Some(d) => Ok(d),
                None => NaiveDateTime::parse_from_str(t, OM_TIME_FORMAT),
            };
            assert_eq!(
                fast.ok(),
                NaiveDateTime::parse_from_str(t, OM_TIME_FORMAT).ok(),
                "{t}"
            );
        }
    }
}
