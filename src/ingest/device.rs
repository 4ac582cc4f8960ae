//! Which device sent a push, and whether it may put records in the archive.
//!
//! The devices are the config file's `[[device]]` tables plus those
//! registered in the archive (`callvault devices add`, `store::devices`);
//! the [`Registry`] holds both and is refreshed by the deriver when the
//! archive's list changes, so a running server sees a new device within a
//! moment and without a restart.
//!
//! A push is identified by the MAC (or IVR `sn`) its messages name, else by
//! its source IP. A push that names a MAC no device has is unregistered even
//! when its source IP is a device's: two devices can share a NAT address.
//! An unregistered push is stored raw and held (README "Who may push"):
//! nothing is lost, nothing reaches billing until its sender is registered.
//! A push naming a registered MAC from outside that device's addresses is a
//! spoofing attempt and refused.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::config::{Config, DeviceConfig};
use crate::store::devices::Registered;

/// What a push's sender is.
#[derive(Debug, Clone)]
pub enum Identified {
    /// A configured or registered device.
    Known(Arc<DeviceConfig>),
    /// No device matches; with `accept_unknown_devices` (a lab) it is
    /// derived under its IP, otherwise held.
    Unregistered {
        /// The normalised MAC (or sn) the push named.
        mac: Option<String>,
        source: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    /// The MAC names a device that may only push from other addresses.
    #[error("source {source_ip} is not allowed to push for device {device}")]
    SourceNotAllowed { device: String, source_ip: String },
}

/// `00-0e-a9-…` and `00:0E:A9:…` name the same device.
pub fn norm_mac(m: &str) -> String {
    m.trim().to_ascii_uppercase().replace('-', ":")
}

/// The devices that may push, shared by ingest, the deriver, the fetcher
/// and the API.
pub struct Registry {
    config: Vec<Arc<DeviceConfig>>,
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    /// Config devices first, then the archive's.
    devices: Vec<Arc<DeviceConfig>>,
    /// Addresses devices may push from (configured). The listener's limits
    /// never apply to these, nor to `learned`.
    device_ips: HashSet<IpAddr>,
    /// Addresses devices pushed from (a device known by MAC only), by device.
    learned: HashMap<IpAddr, String>,
    /// The archive's `devices_version` these devices are from.
    version: Option<i64>,
}

/// Learned addresses kept at most (a device's address rarely changes;
/// this only bounds a MAC-only device that hops around).
const MAX_LEARNED_IPS: usize = 65_536;

impl Registry {
    /// A registry of the config file's devices; the archive's are added by
    /// [`Registry::set_registered`].
    pub fn new(cfg: &Config) -> Arc<Registry> {
        let config: Vec<Arc<DeviceConfig>> = cfg.devices.iter().cloned().map(Arc::new).collect();
        let reg = Registry {
            state: RwLock::new(State::default()),
            config,
        };
        reg.install(Vec::new(), None);
        Arc::new(reg)
    }

    fn install(&self, registered: Vec<Registered>, version: Option<i64>) {
        let mut devices = self.config.clone();
        for r in registered {
            if devices.iter().any(|d| d.name == r.name) {
                continue;
            }
            devices.push(Arc::new(DeviceConfig {
                name: r.name,
                mac: r.mac,
                // The recorder lives on the address the device pushes from.
                addr: r.ip.clone(),
                push_from: r.ip.into_iter().collect(),
                ..Default::default()
            }));
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        state.device_ips = devices
            .iter()
            .flat_map(|d| d.allowed_sources())
            .filter_map(|s| s.parse::<IpAddr>().ok())
            .map(|ip| ip.to_canonical())
            .collect();
        // Learned addresses stay while their device is registered.
        state
            .learned
            .retain(|_, name| devices.iter().any(|d| &d.name == name));
        state.devices = devices;
        state.version = version;
    }

    /// Replaces the archive's devices (the deriver calls this when
    /// `devices_version` changes). Returns the devices now registered.
    pub fn set_registered(
        &self,
        registered: Vec<Registered>,
        version: i64,
    ) -> Vec<Arc<DeviceConfig>> {
        self.install(registered, Some(version));
        self.devices()
    }

    /// Knows the archive's devices before the deriver's first step, which
    /// loads them again and releases what was held (version unknown).
    pub fn preload(&self, registered: Vec<Registered>) {
        self.install(registered, None);
    }

    /// Marks the registry as not loaded from the archive, keeping its
    /// devices: the next derivation step loads them again and releases
    /// what was held (a collector taking over the derivation).
    pub fn forget_version(&self) {
        self.state
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .version = None;
    }

    /// The archive version the registry was last loaded from.
    pub fn version(&self) -> Option<i64> {
        self.read().version
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Every device, config file's first.
    pub fn devices(&self) -> Vec<Arc<DeviceConfig>> {
        self.read().devices.clone()
    }

    /// The device called `name`.
    pub fn device(&self, name: &str) -> Option<Arc<DeviceConfig>> {
        self.read().devices.iter().find(|d| d.name == name).cloned()
    }

    /// Whether `ip` is an address a device pushes from: connection and
    /// rate limits never apply to it.
    pub fn is_device_ip(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let state = self.read();
        state.device_ips.contains(&ip) || state.learned.contains_key(&ip)
    }

    /// Remembers that `device` pushed from `ip`.
    pub fn learn_ip(&self, ip: IpAddr, device: &str) {
        let ip = ip.to_canonical();
        if self.is_device_ip(ip) {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if state.learned.len() < MAX_LEARNED_IPS {
            state.learned.insert(ip, device.to_string());
        }
    }

    /// Identifies the sender of a push that named `mac` (if any), from `source_ip`.
    pub fn identify(&self, mac: Option<&str>, source_ip: &str) -> Result<Identified, DeviceError> {
        let state = self.read();
        let unregistered = |mac: Option<String>| Identified::Unregistered {
            mac,
            source: source_ip.to_string(),
        };
        if let Some(m) = mac.map(norm_mac).filter(|m| !m.is_empty()) {
            let Some(d) = state
                .devices
                .iter()
                .find(|d| d.mac.as_deref().map(norm_mac).as_deref() == Some(m.as_str()))
            else {
                return Ok(unregistered(Some(m)));
            };
            let allowed = d.allowed_sources();
            if !allowed.is_empty() && !allowed.iter().any(|a| a == source_ip) {
                return Err(DeviceError::SourceNotAllowed {
                    device: d.name.clone(),
                    source_ip: source_ip.to_string(),
                });
            }
            return Ok(Identified::Known(d.clone()));
        }
        match state
            .devices
            .iter()
            .find(|d| d.allowed_sources().iter().any(|a| a == source_ip))
        {
            Some(d) => Ok(Identified::Known(d.clone())),
            None => Ok(unregistered(None)),
        }
    }
}

/// Devices anyone can claim: a MAC but no address to check it against.
/// `serve` warns about each at start.
pub fn unprotected(cfg: &Config) -> Vec<&DeviceConfig> {
    cfg.devices
        .iter()
        .filter(|d| d.mac.is_some() && d.allowed_sources().is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> Arc<Registry> {
        let mut c = Config::default();
        c.devices.push(DeviceConfig {
            name: "hq".into(),
            mac: Some("00:0E:A9:2D:07:D0".into()),
            addr: Some("10.0.0.5".into()),
            ..Default::default()
        });
        Registry::new(&c)
    }

    fn name(id: Identified) -> String {
        match id {
            Identified::Known(d) => d.name.clone(),
            Identified::Unregistered { mac, source } => format!("? {mac:?} {source}"),
        }
    }

    #[test]
    fn identify_by_mac_case_insensitive() {
        let r = registry();
        assert_eq!(
            name(r.identify(Some("00-0e-a9-2d-07-d0"), "10.0.0.5").unwrap()),
            "hq"
        );
    }

    #[test]
    fn identify_mac_from_wrong_source_refused() {
        assert!(matches!(
            registry().identify(Some("00:0E:A9:2D:07:D0"), "10.9.9.9"),
            Err(DeviceError::SourceNotAllowed { .. })
        ));
    }

    #[test]
    fn an_unknown_mac_is_unregistered_even_from_a_device_address() {
        let r = registry();
        assert_eq!(
            name(r.identify(Some("00:0e:a9:00:00:01"), "10.0.0.5").unwrap()),
            "? Some(\"00:0E:A9:00:00:01\") 10.0.0.5"
        );
    }

    #[test]
    fn identify_by_ip_then_unregistered() {
        let r = registry();
        assert_eq!(name(r.identify(None, "10.0.0.5").unwrap()), "hq");
        assert_eq!(
            name(r.identify(None, "10.1.1.1").unwrap()),
            "? None 10.1.1.1"
        );
    }

    #[test]
    fn registered_devices_join_the_config_ones() {
        let r = registry();
        let all = r.set_registered(
            vec![Registered {
                name: "branch".into(),
                mac: None,
                ip: Some("10.1.1.1".into()),
                added_at: String::new(),
            }],
            1,
        );
        assert_eq!(all.len(), 2);
        assert_eq!(name(r.identify(None, "10.1.1.1").unwrap()), "branch");
        assert!(r.is_device_ip("10.1.1.1".parse().unwrap()));
        assert!(r.is_device_ip("10.0.0.5".parse().unwrap()));
        assert!(!r.is_device_ip("10.2.2.2".parse().unwrap()));
        r.learn_ip("10.3.3.3".parse().unwrap(), "branch");
        assert!(r.is_device_ip("10.3.3.3".parse().unwrap()));
        r.set_registered(Vec::new(), 2);
        assert_eq!(
            name(r.identify(None, "10.1.1.1").unwrap()),
            "? None 10.1.1.1"
        );
        assert!(!r.is_device_ip("10.1.1.1".parse().unwrap()));
        assert!(!r.is_device_ip("10.3.3.3".parse().unwrap()));
    }
}
