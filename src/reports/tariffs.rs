//! The tariff table of the billing CSV: a CSV file with the header
//! `prefix,rate_per_minute,increment_seconds,minimum_seconds`. The longest
//! prefix of the billed (dialled) number wins; an empty prefix is a catch-all.
//!
//! Rounding: for `secs > 0`,
//! `billed = max(minimum, ceil(secs / increment) * increment)`, else 0;
//! `cost = billed / 60 * rate`, rounded half up to 4 decimals. Rates are
//! decimals with up to 6 places and the arithmetic is exact (integers).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

use super::{ReportError, Result};

/// One tariff line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    pub prefix: String,
    /// Rate per minute in millionths.
    pub rate_micros: i64,
    pub increment_seconds: i64,
    pub minimum_seconds: i64,
}

impl Tariff {
    /// Seconds billed for `secs` seconds of talk.
    pub fn billed_seconds(&self, secs: i64) -> i64 {
        if secs <= 0 {
            return 0;
        }
        let inc = self.increment_seconds.max(1);
        let rounded = (secs / inc + i64::from(secs % inc != 0)).saturating_mul(inc);
        rounded.max(self.minimum_seconds)
    }

    /// Cost of `billed` seconds in ten-thousandths (4 decimals), rounded half up.
    pub fn cost_1e4(&self, billed: i64) -> i64 {
        // billed/60 minutes × rate µ-units → 1e-6; /100 → 1e-4.
        let num = i128::from(billed) * i128::from(self.rate_micros);
        let den = 60 * 100;
        i64::try_from((num + den / 2) / den).unwrap_or(i64::MAX)
    }
}

/// Formats ten-thousandths as a decimal with 4 places (`12345` → `1.2345`).
pub fn format_1e4(v: i64) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let a = v.unsigned_abs();
    format!("{sign}{}.{:04}", a / 10_000, a % 10_000)
}

/// Parses a non-negative decimal with up to 6 places into millionths.
fn parse_micros(s: &str) -> Option<i64> {
    let s = s.trim();
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if int.is_empty() && frac.is_empty() || frac.len() > 6 {
        return None;
    }
    let digits = |t: &str| t.chars().all(|c| c.is_ascii_digit());
    if !digits(int) || !digits(frac) {
        return None;
    }
    let i: i64 = if int.is_empty() { 0 } else { int.parse().ok()? };
    let f: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<6}").parse().ok()?
    };
    i.checked_mul(1_000_000)?.checked_add(f)
}

#[derive(Debug, Deserialize)]
struct Line {
    prefix: String,
    rate_per_minute: String,
    increment_seconds: String,
    minimum_seconds: String,
}

/// A parsed tariff table.
#[derive(Debug, Clone, Default)]
pub struct Tariffs {
    by_prefix: HashMap<String, Tariff>,
}

impl Tariffs {
    pub fn from_file(path: &Path) -> Result<Tariffs> {
        let bytes = std::fs::read(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Tariffs::from_csv(&bytes)
    }

    /// Parses the CSV (a UTF-8 BOM is allowed; `#` lines are comments).
    pub fn from_csv(bytes: &[u8]) -> Result<Tariffs> {
        let bytes = bytes.strip_prefix(super::run::BOM).unwrap_or(bytes);
        let mut rd = csv::ReaderBuilder::new()
            .trim(csv::Trim::All)
            .comment(Some(b'#'))
            .from_reader(bytes);
        let mut by_prefix = HashMap::new();
        for (idx, rec) in rd.deserialize::<Line>().enumerate() {
            let line = |e: &csv::Error| e.position().map_or(0, |p| p.line());
            let l = rec.map_err(|e| ReportError::Tariff {
                line: line(&e),
                reason: e.to_string(),
            })?;
            let bad = |what: &str| ReportError::Tariff {
                line: idx as u64 + 2,
                reason: format!("{what} for prefix {:?}", l.prefix),
            };
            let t = Tariff {
                rate_micros: parse_micros(&l.rate_per_minute).ok_or_else(|| {
                    bad("rate_per_minute must be a decimal >= 0 with at most 6 places")
                })?,
                increment_seconds: l
                    .increment_seconds
                    .parse()
                    .ok()
                    .filter(|v: &i64| *v >= 1)
                    .ok_or_else(|| bad("increment_seconds must be an integer >= 1"))?,
                minimum_seconds: l
                    .minimum_seconds
                    .parse()
                    .ok()
                    .filter(|v: &i64| *v >= 0)
                    .ok_or_else(|| bad("minimum_seconds must be an integer >= 0"))?,
                prefix: l.prefix.clone(),
            };
            if by_prefix.insert(l.prefix.clone(), t).is_some() {
                return Err(bad("duplicate line"));
            }
        }
        Ok(Tariffs { by_prefix })
    }

    pub fn len(&self) -> usize {
        self.by_prefix.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_prefix.is_empty()
    }

    /// The tariff of the longest prefix of `number`.
    pub fn lookup(&self, number: &str) -> Option<&Tariff> {
        let number = number.trim();
        let mut ends: Vec<usize> = number.char_indices().map(|(i, _)| i).skip(1).collect();
        ends.push(number.len());
        ends.iter()
            .rev()
            .find_map(|&e| self.by_prefix.get(&number[..e]))
            .or_else(|| self.by_prefix.get(""))
    }

    /// (billed_seconds, cost) for a number and its billable seconds; `None` when no tariff matches.
    pub fn price(&self, number: &str, secs: i64) -> Option<(i64, String)> {
        let t = self.lookup(number)?;
        let billed = t.billed_seconds(secs);
        Some((billed, format_1e4(t.cost_1e4(billed))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "prefix,rate_per_minute,increment_seconds,minimum_seconds\n\
        0,0.30,60,60\n\
        00,2.5,6,30\n\
        1380,0.1,1,0\n\
        138,0.12,6,0\n";

    fn t() -> Tariffs {
        Tariffs::from_csv(TABLE.as_bytes()).expect("parses")
    }

    #[test]
    fn lookup_takes_longest_prefix() {
        assert_eq!(
            t().lookup("13800001111").map(|x| x.prefix.as_str()),
            Some("1380")
        );
        assert!(t().lookup("13912345678").is_none());
        assert_eq!(
            t().lookup("13812345678").map(|x| x.prefix.as_str()),
            Some("138")
        );
        assert_eq!(t().lookup("0044123").map(|x| x.prefix.as_str()), Some("00"));
        assert_eq!(t().lookup("010888").map(|x| x.prefix.as_str()), Some("0"));
    }

    #[test]
    fn price_rounds_up_to_increment_and_minimum() {
        // 61 s at 60 s increments → 120 s at 0.30/min = 0.6000.
        assert_eq!(t().price("010888", 61), Some((120, "0.6000".into())));
        // 1 s with a 30 s minimum, 6 s increments → 30 s at 2.5/min = 1.2500.
        assert_eq!(t().price("0044123", 1), Some((30, "1.2500".into())));
        // 31 s → 36 s (6 s increments) at 2.5/min = 1.5000.
        assert_eq!(t().price("0044123", 31), Some((36, "1.5000".into())));
        // 7 s per-second at 0.1/min = 0.011666… → 0.0117.
        assert_eq!(t().price("13800001111", 7), Some((7, "0.0117".into())));
    }

    #[test]
    fn price_zero_seconds_costs_nothing() {
        assert_eq!(t().price("0044123", 0), Some((0, "0.0000".into())));
    }

    #[test]
    fn price_without_match_is_none() {
        assert_eq!(t().price("200", 60), None);
        let all = Tariffs::from_csv(
            b"prefix,rate_per_minute,increment_seconds,minimum_seconds\n,1,60,0\n",
        )
        .expect("ok");
        assert_eq!(all.price("200", 60), Some((60, "1.0000".into())));
    }

    #[test]
    fn from_csv_rejects_bad_lines() {
        let h = "prefix,rate_per_minute,increment_seconds,minimum_seconds\n";
        for bad in [
            "0,abc,60,0",
            "0,1,0,0",
            "0,1,60,-1",
            "0,1.1234567,60,0",
            "0,1,60",
            "0,1,60,0\n0,2,60,0",
        ] {
            assert!(
                Tariffs::from_csv(format!("{h}{bad}\n").as_bytes()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn from_csv_accepts_bom_and_comments() {
        let text = format!("\u{feff}# tariffs\n{TABLE}");
        assert_eq!(Tariffs::from_csv(text.as_bytes()).expect("ok").len(), 4);
    }

    #[test]
    fn parse_micros_is_exact() {
        assert_eq!(parse_micros("0.1"), Some(100_000));
        assert_eq!(parse_micros("12"), Some(12_000_000));
        assert_eq!(parse_micros(".5"), Some(500_000));
        assert_eq!(parse_micros("-1"), None);
        assert_eq!(parse_micros(""), None);
    }
}
