//! Tests of the configuration: file, environment overrides, checks.
use super::*;

#[test]
fn s3_location_splits_bucket_and_prefix() {
    let loc = |store: &str| {
        RecordingsConfig {
            store: store.into(),
            ..RecordingsConfig::default()
        }
        .s3_location()
    };
    assert_eq!(
        loc("s3://calls/rec/hq/"),
        Some(("calls".into(), "rec/hq".into()))
    );
    assert_eq!(loc("s3://calls"), Some(("calls".into(), "".into())));
    assert_eq!(loc("s3:///x"), None);
    assert_eq!(loc("file:"), None);
}

#[test]
fn store_url_from_the_environment_and_refused_when_unknown() {
    let env = |v: &str| vec![("CALLVAULT_STORE_URL".to_string(), v.to_string())];
    let cfg = Config::load(None, env("postgres://cv:s3cret@db:5432/archive")).expect("loads");
    assert_eq!(
        cfg.store.backend().expect("known"),
        StoreUrl::Postgres("postgres://cv:s3cret@db:5432/archive".into())
    );
    assert_eq!(
        Config::default().store.backend().expect("default"),
        StoreUrl::Sqlite
    );
    let e = Config::load(None, env("mysql://cv:s3cret@db/archive")).expect_err("refused");
    assert!(e.to_string().contains("[store] url"), "{e}");
    assert!(
        !e.to_string().contains("s3cret"),
        "password kept out of messages: {e}"
    );
    // The host does not resolve here: the store says it cannot reach
    // it, without the password.
    let e = crate::store::Store::open_config(&cfg)
        .err()
        .expect("no such server");
    assert!(
        e.to_string().contains("PostgreSQL") && !e.to_string().contains("s3cret"),
        "{e}"
    );
}

#[test]
fn load_defaults_without_file() {
    let c = Config::load(None, Vec::new()).unwrap();
    assert_eq!(c.ingest.listen, "0.0.0.0:8989");
    assert_eq!(c.api.listen, "127.0.0.1:8080");
    assert_eq!(c.calls.settle_seconds, 120);
    assert_eq!(c.recordings.per_device_concurrency, 2);
}

#[test]
fn load_env_overrides_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "data_dir = \"/x\"\n[ingest]\nmax_body_bytes = 10\n[[device]]\nname = \"hq\"\naddr = \"10.0.0.5:80\"\n",
    )
    .unwrap();
    let env = vec![
        ("CALLVAULT_INGEST_MAX_BODY_BYTES".into(), "77".into()),
        ("CALLVAULT_DATA_DIR".into(), "/y".into()),
        (
            "CALLVAULT_INGEST_ACCEPT_UNKNOWN_DEVICES".into(),
            "false".into(),
        ),
    ];
    let c = Config::load(Some(&p), env).unwrap();
    assert_eq!(c.ingest.max_body_bytes, 77);
    assert_eq!(c.data_dir, PathBuf::from("/y"));
    assert!(!c.ingest.accept_unknown_devices);
    assert_eq!(c.devices[0].allowed_sources(), vec!["10.0.0.5".to_string()]);
    assert_eq!(
        c.devices[0].recorder_base().unwrap(),
        "http://10.0.0.5:80/mcc/Recorder/"
    );
}

#[test]
fn retention_audit_days_default_and_environment() {
    assert_eq!(Config::default().retention.audit_days, 730);
    let env = |v: &str| vec![("CALLVAULT_RETENTION_AUDIT_DAYS".to_string(), v.to_string())];
    let c = Config::load(None, env("90")).unwrap();
    assert_eq!(c.retention.audit_days, 90);
    assert!(Config::load(None, env("soon")).is_err(), "not a number");
}

#[test]
fn retention_keys_defaults_environment_and_negative_values() {
    let d = Config::default().retention;
    assert_eq!(
        (
            d.recordings_days,
            d.calls_days,
            d.raw_days,
            d.quarantine_days
        ),
        (0, 0, 0, 90),
        "calls, recordings and raw pushes are kept for ever unless set"
    );
    for key in [
        "recordings_days",
        "calls_days",
        "raw_days",
        "quarantine_days",
        "audit_days",
    ] {
        let var = format!("CALLVAULT_RETENTION_{}", key.to_ascii_uppercase());
        let c = Config::load(None, vec![(var.clone(), "31".to_string())]).unwrap();
        let got = c
            .retention
            .keys()
            .into_iter()
            .find(|(k, _)| *k == key)
            .unwrap()
            .1;
        assert_eq!(got, 31, "{var}");
        let err = Config::load(None, vec![(var, "-1".to_string())])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("[retention] {key}")) && err.contains("-1"),
            "{err}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.toml");
    std::fs::write(&file, "[retention]\ncalls_days = -5\n").unwrap();
    let err = Config::load(Some(&file), Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("calls_days"), "{err}");
}

#[test]
fn env_override_reaches_the_nested_s3_section() {
    let env = vec![
        (
            "CALLVAULT_RECORDINGS_S3_ENDPOINT".into(),
            "http://127.0.0.1:9000".into(),
        ),
        ("CALLVAULT_RECORDINGS_S3_ALLOW_HTTP".into(), "true".into()),
        ("CALLVAULT_RECORDINGS_S3_ACCESS_KEY_ID".into(), "ak".into()),
        ("CALLVAULT_RECORDINGS_STORE".into(), "s3://calls/rec".into()),
        ("CALLVAULT_RECORDINGS_MAX_CONCURRENT".into(), "3".into()),
    ];
    let c = Config::load(None, env).unwrap();
    let s3 = &c.recordings.s3;
    assert_eq!(s3.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
    assert!(s3.allow_http);
    assert_eq!(s3.access_key_id.as_deref(), Some("ak"));
    assert_eq!(s3.region, "us-east-1");
    assert_eq!(c.recordings.store, "s3://calls/rec");
    assert_eq!(c.recordings.max_concurrent, 3);
}

#[test]
fn env_override_keeps_a_nested_section_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "[recordings]\nstore = \"s3://b\"\n[recordings.s3]\nregion = \"eu-1\"\nendpoint = \"https://x\"\n",
    )
    .unwrap();
    let env = vec![(
        "CALLVAULT_RECORDINGS_S3_ENDPOINT".into(),
        "https://y".into(),
    )];
    let c = Config::load(Some(&p), env).unwrap();
    assert_eq!(c.recordings.s3.endpoint.as_deref(), Some("https://y"));
    assert_eq!(c.recordings.s3.region, "eu-1");
}

#[test]
fn load_rejects_a_bad_recordings_store() {
    for bad in ["s3://", "s3:///x", "ftp://b", "file:/x", ""] {
        let env = vec![("CALLVAULT_RECORDINGS_STORE".into(), bad.to_string())];
        assert!(Config::load(None, env).is_err(), "{bad:?}");
    }
}

#[test]
fn claim_lease_seconds_is_read_and_never_zero() {
    let env = |v: &str| vec![("CALLVAULT_RECORDINGS_CLAIM_LEASE_SECONDS".into(), v.into())];
    assert_eq!(Config::default().recordings.claim_lease_seconds, 1800);
    let cfg = Config::load(None, env("5")).unwrap();
    assert_eq!(cfg.recordings.claim_lease_seconds, 5);
    assert!(Config::load(None, env("0")).is_err());
}

#[test]
fn s3_debug_hides_the_secret() {
    let s3 = S3Config {
        secret_access_key: Some("hunter2".into()),
        ..Default::default()
    };
    assert!(!format!("{s3:?}").contains("hunter2"));
}

#[test]
fn load_rejects_unknown_key_and_bad_tz() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(&p, "[ingest]\nlisten_on = \"x\"\n").unwrap();
    assert!(Config::load(Some(&p), Vec::new()).is_err());
    std::fs::write(&p, "timezone = \"Mars/Base\"\n").unwrap();
    let e = Config::load(Some(&p), Vec::new()).unwrap_err();
    assert!(e.to_string().contains("Mars/Base"));
}

#[test]
fn send_side_defaults_to_the_extension_and_refuses_other_words() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("c.toml");
    std::fs::write(
        &p,
        "[[device]]\nname = \"hq\"\n[[device]]\nname = \"branch\"\nsend_side = \"remote\"\n",
    )
    .unwrap();
    let c = Config::load(Some(&p), Vec::new()).unwrap();
    assert_eq!(c.send_side("hq"), SendSide::Extension);
    assert_eq!(c.send_side("branch"), SendSide::Remote);
    assert_eq!(c.send_side("not-configured"), SendSide::Extension);
    std::fs::write(&p, "[[device]]\nname = \"hq\"\nsend_side = \"left\"\n").unwrap();
    let e = Config::load(Some(&p), Vec::new()).expect_err("refused");
    assert!(e.to_string().contains("left"), "{e}");
}
