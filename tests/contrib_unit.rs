//! `contrib/callvault.service` is a unit systemd accepts, with its
//! sandboxing options, when `systemd-analyze` is on the machine.

use std::process::Command;

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/contrib/callvault.service"
    ))
    .expect("contrib/callvault.service");
    for option in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "User=callvault",
    ] {
        assert!(unit.contains(option), "the unit lacks {option}");
    }
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped the_systemd_unit_verifies: systemd-analyze is not installed");
        return;
    }
    // The unit as installed, pointing at the binary under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("callvault.service");
    let unit = unit.replace("/usr/local/bin/callvault", env!("CARGO_BIN_EXE_callvault"));
    std::fs::write(&path, unit).expect("write unit");
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze");
    let said =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    // Only what concerns our unit: the host's own units may have warnings.
    let ours: Vec<&str> = said.lines().filter(|l| l.contains("callvault")).collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify: {said}"
    );
}
