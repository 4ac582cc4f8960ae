//! Reverse authentication of OM pushes (manual §4.5, parameters
//! API_SERVER_PASSWORD and API_TIMEOUT in §6.1).
//!
//! A device with a server password appends
//! `<Auth><nonce/><timestamp/><signature/></Auth>` after each message, where
//! `signature = md5(API_SERVER_PASSWORD + nonce + timestamp)` in lowercase hex.
//! What the signature proves is only that whoever made it knew the password
//! when the timestamp was current: it does not cover the message, so an
//! Auth block seen on the wire can sign any other message until it expires
//! (`auth_timeout`, default five minutes). The manual does not say whether
//! the device makes a fresh nonce per message (its forward-direction error
//! 103 suggests a nonce lives for the whole window), so reuse is accepted
//! unless the device has `auth_nonce_single_use` (`replay`).

use md5::{Digest, Md5};

use crate::model::Auth;

/// Why a push failed reverse authentication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// The message carried no `<Auth>` block.
    #[error("unsigned message")]
    Missing,
    /// The signature does not match the configured server password.
    #[error("bad signature")]
    BadSignature,
    /// The timestamp is further than the validity period from now (either way).
    #[error("stale signature (age {age} s)")]
    Stale {
        /// `now - timestamp` in seconds; negative when the timestamp is in the future.
        age: i64,
    },
    /// The timestamp is not a number of seconds since 1970.
    #[error("bad timestamp")]
    BadTimestamp,
    /// The (nonce, timestamp) was already accepted from this device, which
    /// has `auth_nonce_single_use` (see `replay`).
    #[error("nonce already used (a replayed Auth)")]
    Replayed,
}

/// The signature a device with `password` puts on `nonce` and `timestamp`:
/// 32 lowercase hex digits.
pub fn sign(password: &str, nonce: &str, timestamp: &str) -> String {
    let mut md5 = Md5::new();
    md5.update(password.as_bytes());
    md5.update(nonce.as_bytes());
    md5.update(timestamp.as_bytes());
    hex::encode(md5.finalize())
}

/// Checks a push's Auth against the device's server password.
///
/// `validity_secs` is API_TIMEOUT: 0 means a signature never expires,
/// otherwise `|now_unix - timestamp|` must not exceed it (a device clock
/// running ahead is as suspicious as a replay of an old message). The
/// signature is compared case-insensitively.
pub fn verify(
    auth: Option<&Auth>,
    server_password: &str,
    validity_secs: u64,
    now_unix: i64,
) -> Result<(), AuthError> {
    let auth = auth.ok_or(AuthError::Missing)?;
    let timestamp_text = auth.timestamp.trim();
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| AuthError::BadTimestamp)?;
    let expected = sign(server_password, auth.nonce.trim(), timestamp_text);
    if !same_hex(&expected, auth.signature.trim()) {
        return Err(AuthError::BadSignature);
    }
    let age = now_unix.saturating_sub(timestamp);
    if validity_secs != 0 && age.unsigned_abs() > validity_secs {
        return Err(AuthError::Stale { age });
    }
    Ok(())
}

/// Case-insensitive comparison that looks at every byte, so the time taken
/// does not tell an attacker how many leading digits were right.
fn same_hex(expected: &str, given: &str) -> bool {
    expected.len() == given.len()
        && expected
            .bytes()
            .zip(given.bytes())
            .fold(0u8, |diff, (a, b)| {
                diff | (a.to_ascii_lowercase() ^ b.to_ascii_lowercase())
            })
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signed BUSY example of manual §4.5. The manual does not print the
    /// password; `123456` reproduces its signature.
    const MANUAL_PASSWORD: &str = "123456";
    const MANUAL_NONCE: &str = "2E8E52C6";
    const MANUAL_TIMESTAMP: &str = "1498542290";
    const MANUAL_SIGNATURE: &str = "24fe6019c3f284789f8cfacc3446e7ed";
    const MANUAL_TIME: i64 = 1_498_542_290;

    fn manual_auth() -> Auth {
        Auth {
            nonce: MANUAL_NONCE.into(),
            timestamp: MANUAL_TIMESTAMP.into(),
            signature: MANUAL_SIGNATURE.into(),
        }
    }

    #[test]
    fn sign_reproduces_manual_example() {
        assert_eq!(
            sign(MANUAL_PASSWORD, MANUAL_NONCE, MANUAL_TIMESTAMP),
            MANUAL_SIGNATURE
        );
    }

    #[test]
    fn sign_is_md5_of_concatenation() {
        // md5("abc") from RFC 1321's test suite, split across the three parts.
        assert_eq!(sign("a", "b", "c"), "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn verify_accepts_manual_example() {
        assert_eq!(
            verify(Some(&manual_auth()), MANUAL_PASSWORD, 0, MANUAL_TIME),
            Ok(())
        );
    }

    #[test]
    fn verify_accepts_upper_case_signature() {
        let mut auth = manual_auth();
        auth.signature = auth.signature.to_ascii_uppercase();
        assert_eq!(verify(Some(&auth), MANUAL_PASSWORD, 0, MANUAL_TIME), Ok(()));
    }

    #[test]
    fn verify_rejects_missing_auth() {
        assert_eq!(
            verify(None, MANUAL_PASSWORD, 0, MANUAL_TIME),
            Err(AuthError::Missing)
        );
    }

    #[test]
    fn verify_rejects_wrong_password() {
        assert_eq!(
            verify(Some(&manual_auth()), "654321", 0, MANUAL_TIME),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn verify_rejects_tampered_timestamp() {
        let mut auth = manual_auth();
        auth.timestamp = "1498542291".into();
        assert_eq!(
            verify(Some(&auth), MANUAL_PASSWORD, 0, MANUAL_TIME),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn verify_rejects_truncated_signature() {
        let mut auth = manual_auth();
        auth.signature.truncate(31);
        assert_eq!(
            verify(Some(&auth), MANUAL_PASSWORD, 0, MANUAL_TIME),
            Err(AuthError::BadSignature)
        );
    }

    #[test]
    fn verify_rejects_non_numeric_timestamp() {
        let auth = Auth {
            nonce: "n".into(),
            timestamp: "yesterday".into(),
            signature: sign("pw", "n", "yesterday"),
        };
        assert_eq!(
            verify(Some(&auth), "pw", 0, 0),
            Err(AuthError::BadTimestamp)
        );
    }

    #[test]
    fn verify_zero_validity_never_expires() {
        let ten_years = 10 * 365 * 86_400;
        assert_eq!(
            verify(
                Some(&manual_auth()),
                MANUAL_PASSWORD,
                0,
                MANUAL_TIME + ten_years
            ),
            Ok(())
        );
    }

    #[test]
    fn verify_accepts_age_equal_to_validity() {
        assert_eq!(
            verify(Some(&manual_auth()), MANUAL_PASSWORD, 60, MANUAL_TIME + 60),
            Ok(())
        );
    }

    #[test]
    fn verify_rejects_old_timestamp() {
        assert_eq!(
            verify(Some(&manual_auth()), MANUAL_PASSWORD, 60, MANUAL_TIME + 61),
            Err(AuthError::Stale { age: 61 })
        );
    }

    #[test]
    fn verify_rejects_future_timestamp() {
        assert_eq!(
            verify(Some(&manual_auth()), MANUAL_PASSWORD, 60, MANUAL_TIME - 61),
            Err(AuthError::Stale { age: -61 })
        );
    }

    #[test]
    fn verify_survives_extreme_timestamps() {
        let auth = Auth {
            nonce: "n".into(),
            timestamp: i64::MIN.to_string(),
            signature: sign("pw", "n", &i64::MIN.to_string()),
        };
        assert_eq!(
            verify(Some(&auth), "pw", 60, i64::MAX),
            Err(AuthError::Stale { age: i64::MAX })
        );
    }
}
