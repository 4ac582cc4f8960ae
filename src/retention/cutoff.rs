//! Where each `[retention]` limit falls at a given time. Calls and queue
//! visits carry the device's local wall-clock time (ARCHITECTURE.md "Time
//! zones"), so their cutoff is that instant in each device's zone.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::config::Config;

/// A cutoff on rows dated on a device's local clock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Local {
    /// The cutoff instant (unix ms): events received before it go with calls.
    pub before_ms: i64,
    /// The latest of the local cutoffs over all zones: the index walk stops there.
    pub latest: String,
    default: String,
    devices: HashMap<String, String>,
}

impl Local {
    fn new(cfg: &Config, before_ms: i64) -> Local {
        let at = |tz: chrono_tz::Tz| local_text(before_ms, tz);
        let default = at(cfg.default_tz());
        let devices: HashMap<String, String> = cfg
            .devices
            .iter()
            .map(|d| (d.name.clone(), at(cfg.device_tz(&d.name))))
            .collect();
        let latest = devices
            .values()
            .chain(std::iter::once(&default))
            .max()
            .cloned()
            .unwrap_or_default();
        Local {
            before_ms,
            latest,
            default,
            devices,
        }
    }

    /// Whether a row of `device` dated `local` is before the cutoff.
    pub fn is_past(&self, device: &str, local: &str) -> bool {
        local < self.devices.get(device).unwrap_or(&self.default).as_str()
    }
}

/// Every limit of `[retention]` at one instant; `None`: kept for ever.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutoffs {
    /// Recordings of calls that started before this go: the earlier of
    /// `recordings_days` and `calls_days` (a call's recordings go with it).
    pub recordings: Option<Local>,
    pub calls: Option<Local>,
    pub raw_ms: Option<i64>,
    pub quarantine_ms: Option<i64>,
    pub audit_ms: Option<i64>,
    /// Web sessions idle since before this go (`[api] session_idle_minutes`).
    pub sessions_ms: i64,
}

impl Cutoffs {
    pub fn new(cfg: &Config, now_ms: i64) -> Cutoffs {
        let r = &cfg.retention;
        let ms =
            |days: i64| (days > 0).then(|| now_ms.saturating_sub(days.saturating_mul(86_400_000)));
        let rec_days = [r.recordings_days, r.calls_days]
            .into_iter()
            .filter(|d| *d > 0)
            .min();
        Cutoffs {
            recordings: rec_days.and_then(ms).map(|t| Local::new(cfg, t)),
            calls: ms(r.calls_days).map(|t| Local::new(cfg, t)),
            raw_ms: ms(r.raw_days),
            quarantine_ms: ms(r.quarantine_days),
            audit_ms: ms(r.audit_days),
            sessions_ms: now_ms - i64::from(cfg.api.session_idle_minutes) * 60_000,
        }
    }
}

/// `ms` as the wall-clock text of `tz` that legs and calls keep.
pub fn local_text(ms: i64, tz: chrono_tz::Tz) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// `ms` as UTC text for what `callvault purge --dry-run` prints.
pub fn utc_text(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%d %H:%M:%S UTC")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DeviceConfig;

    #[test]
    fn each_device_is_cut_at_the_same_instant_on_its_own_clock() {
        let mut cfg = Config {
            timezone: "Asia/Shanghai".into(),
            ..Default::default()
        };
        cfg.devices.push(DeviceConfig {
            name: "ny".into(),
            timezone: Some("America/New_York".into()),
            ..Default::default()
        });
        cfg.retention.calls_days = 10;
        cfg.retention.recordings_days = 30;
        // 2026-01-11 00:00:00 UTC; ten days before: 2026-01-01 00:00 UTC.
        let now = 1_768_089_600_000;
        let c = Cutoffs::new(&cfg, now);
        let calls = c.calls.clone().expect("calls cutoff");
        assert_eq!(calls.before_ms, now - 10 * 86_400_000);
        assert!(calls.is_past("om", "2026-01-01 07:59:59"));
        assert!(!calls.is_past("om", "2026-01-01 08:00:00"));
        assert!(calls.is_past("ny", "2025-12-31 18:59:59"));
        assert!(!calls.is_past("ny", "2025-12-31 19:00:00"));
        assert_eq!(calls.latest, "2026-01-01 08:00:00");
        assert_eq!(c.recordings, Some(calls), "recordings go with their calls");
        assert_eq!(c.raw_ms, None, "kept for ever by default");
        assert_eq!(c.quarantine_ms, Some(now - 90 * 86_400_000));
    }
}
