//! A CDR leg's `<Type>` (OM manual §2.6: "six types of CDR"): what the
//! calls stage keys its joining and summary rules on.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// `<Type>` of a leg. A type the manual does not list (a newer firmware)
/// is kept as sent in `Other`, upper-cased, so that nothing a device sends
/// is lost; the calls rules treat it like no known type.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum LegType {
    /// `IN`: a call into the device (from a trunk or an extension's peer).
    In,
    /// `OU`: a call out through a trunk.
    Ou,
    /// `LO`: the calling side of an extension-to-extension call.
    Lo,
    /// `FI`: the incoming side of a forward to an outside number.
    Fi,
    /// `FW`: the outgoing side of that forward.
    Fw,
    /// `CB`: one of the two legs of a two-way callback.
    Cb,
    /// Anything else, upper-cased as sent (may be empty).
    Other(String),
}

impl LegType {
    pub fn as_str(&self) -> &str {
        match self {
            LegType::In => "IN",
            LegType::Ou => "OU",
            LegType::Lo => "LO",
            LegType::Fi => "FI",
            LegType::Fw => "FW",
            LegType::Cb => "CB",
            LegType::Other(s) => s,
        }
    }
}

impl FromStr for LegType {
    type Err = std::convert::Infallible;

    /// Trimmed and upper-cased first, as the devices are not consistent.
    fn from_str(s: &str) -> Result<LegType, Self::Err> {
        let s = s.trim().to_ascii_uppercase();
        Ok(match s.as_str() {
            "IN" => LegType::In,
            "OU" => LegType::Ou,
            "LO" => LegType::Lo,
            "FI" => LegType::Fi,
            "FW" => LegType::Fw,
            "CB" => LegType::Cb,
            _ => LegType::Other(s),
        })
    }
}

impl From<String> for LegType {
    fn from(s: String) -> LegType {
        match s.parse() {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }
}

impl From<&str> for LegType {
    fn from(s: &str) -> LegType {
        LegType::from(s.to_string())
    }
}

impl From<LegType> for String {
    fn from(t: LegType) -> String {
        match t {
            LegType::Other(s) => s,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for LegType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::LegType;

    #[test]
    fn the_six_types_round_trip_and_others_are_kept() {
        for s in ["IN", "OU", "LO", "FI", "FW", "CB"] {
            let t: LegType = s.parse().unwrap();
            assert!(!matches!(t, LegType::Other(_)), "{s}");
            assert_eq!(t.as_str(), s);
            assert_eq!(String::from(t), s);
        }
        assert_eq!(LegType::from(" in "), LegType::In);
        assert_eq!(LegType::from("xy"), LegType::Other("XY".into()));
        assert_eq!(LegType::from("xy").as_str(), "XY");
        let json = serde_json::to_string(&LegType::Fw).unwrap();
        assert_eq!(json, "\"FW\"");
        assert_eq!(
            serde_json::from_str::<LegType>("\"cb\"").unwrap(),
            LegType::Cb
        );
    }
}
