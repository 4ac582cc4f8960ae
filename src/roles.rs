//! The roles a token can have and what each may do: one list for the CLI
//! that creates tokens and the HTTP edge that checks them.

/// Every role, as `token create --role` accepts it.
pub const ROLES: &[&str] = &["admin", "finance", "qa", "reports"];

/// What a route lets a caller do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Perm {
    /// Read legs, calls, queue visits.
    ReadCalls,
    /// Download recordings.
    Recordings,
    /// Billing export.
    Billing,
    /// Reports and metrics.
    Reports,
    /// The full text of errors (a recording fetch's error names device URLs
    /// and local paths): administrators only.
    Diagnostics,
    /// Read the audit log (who played, viewed and exported what): it names
    /// every user and what they did, so administrators only.
    Audit,
}

/// Whether `role` may do `perm`; an unknown role may do nothing.
pub fn allows(role: &str, perm: Perm) -> bool {
    match role {
        "admin" => true,
        "finance" => matches!(perm, Perm::ReadCalls | Perm::Billing | Perm::Reports),
        "qa" => matches!(perm, Perm::ReadCalls | Perm::Recordings),
        "reports" => matches!(perm, Perm::ReadCalls | Perm::Reports),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_diagnostics_to_admin_only() {
        for role in ROLES {
            assert_eq!(allows(role, Perm::Diagnostics), *role == "admin", "{role}");
        }
    }

    #[test]
    fn allows_the_audit_log_to_admin_only() {
        for role in ROLES {
            assert_eq!(allows(role, Perm::Audit), *role == "admin", "{role}");
        }
    }

    #[test]
    fn allows_nothing_to_an_unknown_role() {
        assert!(!allows("guest", Perm::ReadCalls));
    }
}
