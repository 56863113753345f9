use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;

use service_process::ServiceProcess;

use crate::helpers::{DEADLINE, minimal, run};

#[test]
fn bad_settings_exit_78_naming_the_key_and_the_variable() {
    let output = run(&[("MINIMAL__SERVER__ADDR", "not-an-address")], &[]);

    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("server.addr"), "{stderr}");
    assert!(stderr.contains("MINIMAL__SERVER__ADDR"), "{stderr}");
}

#[test]
fn a_typo_in_a_variable_is_refused_with_a_suggestion() {
    let output = run(&[("MINIMAL__SHUTDOWN__DRAIN_DELAI", "1s")], &[]);

    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("did you mean `shutdown.drain_delay` (MINIMAL__SHUTDOWN__DRAIN_DELAY)?"),
        "{stderr}"
    );
}

#[test]
fn check_config_prints_the_redacted_settings_and_exits_zero() {
    let token = "a-token-that-is-long-enough";
    let output = run(
        &[
            ("MINIMAL__ADMIN__TOKEN", token),
            ("MINIMAL__GREETING", "Bonjour"),
        ],
        &["--check-config"],
    );

    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains(token), "{stdout}");
    let dump: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(dump["greeting"]["value"], "Bonjour");
    assert_eq!(
        dump["greeting"]["origin"],
        "environment variable MINIMAL__GREETING"
    );
    assert_eq!(dump["admin.token"]["value"], "[REDACTED]");
    assert_eq!(
        dump["server.addr"]["origin"],
        "environment variable MINIMAL__SERVER__ADDR"
    );
}

#[test]
fn a_busy_port_stops_the_service_with_a_sentence_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let output = run(&[("MINIMAL__SERVER__ADDR", addr.as_str())], &[]);

    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!(
            "Error: cannot listen on {addr} (the setting server.addr)"
        )),
        "{stderr}"
    );
}

#[test]
fn a_malformed_sentry_dsn_is_a_settings_error_without_printing_it() {
    let env = [(
        "MINIMAL__TELEMETRY__SENTRY__DSN",
        "not-a-dsn-with-secret-key",
    )];

    // A deploy pipeline's check and the start refuse it alike.
    let checked = run(&env, &["--check-config"]);
    let started = run(&env, &[]);

    for output in [checked, started] {
        assert_eq!(output.status.code(), Some(78));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("telemetry.sentry.dsn"), "{stderr}");
        assert!(!stderr.contains("secret-key"), "{stderr}");
    }
}

#[test]
fn a_variable_that_is_no_setting_may_hold_any_bytes() {
    let dir = tempfile::TempDir::new().unwrap();
    let not_text = OsStr::from_bytes(b"\xff\xfe");
    // Starts like the prefix, is not a setting's.
    let mut other = minimal(&[], dir.path());
    other.env("MINIMALIST_BLOB", not_text).arg("--check-config");
    // A setting's.
    let mut setting = minimal(&[], dir.path());
    setting
        .env("MINIMAL__GREETING", not_text)
        .arg("--check-config");

    let other = ServiceProcess::run(other, DEADLINE);
    let setting = ServiceProcess::run(setting, DEADLINE);

    assert_eq!(
        other.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    assert_eq!(setting.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&setting.stderr);
    assert!(stderr.contains("MINIMAL__GREETING"), "{stderr}");
    assert!(stderr.contains("not valid UTF-8"), "{stderr}");
}
