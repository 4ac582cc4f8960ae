//! Which device sent a push: the `<MAC>` in the message if present, else
//! the source IP, matched against `[[device]]`; unknown devices are
//! accepted under their IP unless `accept_unknown_devices = false`.

use crate::config::{Config, DeviceConfig};

#[derive(Debug, Clone)]
pub enum Identified<'a> {
    /// A configured device.
    Known(&'a DeviceConfig),
    /// Not configured, accepted under this name (its IP).
    Unknown(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The MAC names a device that may only push from other addresses.
    #[error("source {source_ip} is not allowed to push for device {device}")]
    SourceNotAllowed { device: String, source_ip: String },
    /// Not configured and `accept_unknown_devices = false`.
    #[error("unknown device (mac {mac:?}, source {source_ip}) and accept_unknown_devices is off")]
    Unknown {
        mac: Option<String>,
        source_ip: String,
    },
}

fn norm_mac(m: &str) -> String {
    m.trim().to_ascii_uppercase().replace('-', ":")
}

pub fn identify<'a>(
    cfg: &'a Config,
    mac: Option<&str>,
    source_ip: &str,
) -> Result<Identified<'a>, DeviceError> {
    let by_mac = mac.and_then(|m| {
        let m = norm_mac(m);
        cfg.devices
            .iter()
            .find(|d| d.mac.as_deref().map(norm_mac).as_deref() == Some(m.as_str()))
    });
    if let Some(d) = by_mac {
        let allowed = d.allowed_sources();
        if !allowed.is_empty() && !allowed.iter().any(|a| a == source_ip) {
            return Err(DeviceError::SourceNotAllowed {
                device: d.name.clone(),
                source_ip: source_ip.to_string(),
            });
        }
        return Ok(Identified::Known(d));
    }
    if let Some(d) = cfg
        .devices
        .iter()
        .find(|d| d.allowed_sources().iter().any(|a| a == source_ip))
    {
        return Ok(Identified::Known(d));
    }
    if cfg.ingest.accept_unknown_devices {
        Ok(Identified::Unknown(source_ip.to_string()))
    } else {
        Err(DeviceError::Unknown {
            mac: mac.map(str::to_string),
            source_ip: source_ip.to_string(),
        })
    }
}

impl Identified<'_> {
    pub fn name(&self) -> &str {
        match self {
            Identified::Known(d) => &d.name,
            Identified::Unknown(n) => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(accept: bool) -> Config {
        let mut c = Config::default();
        c.ingest.accept_unknown_devices = accept;
        c.devices.push(DeviceConfig {
            name: "hq".into(),
            mac: Some("00:0E:A9:2D:07:D0".into()),
            addr: Some("10.0.0.5".into()),
            ..Default::default()
        });
        c
    }

    #[test]
    fn identify_by_mac_case_insensitive() {
        let c = cfg(true);
        assert_eq!(
            identify(&c, Some("00:0e:a9:2d:07:d0"), "10.0.0.5")
                .unwrap()
                .name(),
            "hq"
        );
    }

    #[test]
    fn identify_mac_from_wrong_source_refused() {
        let c = cfg(true);
        assert!(matches!(
            identify(&c, Some("00:0E:A9:2D:07:D0"), "10.9.9.9"),
            Err(DeviceError::SourceNotAllowed { .. })
        ));
    }

    #[test]
    fn identify_by_ip_then_unknown() {
        let c = cfg(true);
        assert_eq!(identify(&c, None, "10.0.0.5").unwrap().name(), "hq");
        assert_eq!(identify(&c, None, "10.1.1.1").unwrap().name(), "10.1.1.1");
        assert!(identify(&cfg(false), None, "10.1.1.1").is_err());
    }
}
