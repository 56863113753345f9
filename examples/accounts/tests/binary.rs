//! The `accounts` binary as the README runs it (`cargo run -p accounts`),
//! on its embedded defaults in a fresh working directory: SQLite and the
//! flag file are created under `./data` on first run, the README's requests
//! answer, SIGTERM stops it cleanly, and a second run finds what the first
//! one stored. Only the ports differ: 0, so that tests run in parallel.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use service_process::ServiceProcess;

/// How long any wait for the service may last.
const WAIT: Duration = Duration::from_secs(30);

/// The binary in `dir` on its defaults, but on free ports and with
/// nothing of the caller's `ACCOUNTS*` environment.
fn accounts(dir: &Path) -> ServiceProcess {
    let mut command = Command::new(env!("CARGO_BIN_EXE_accounts"));
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("ACCOUNTS") {
            command.env_remove(name);
        }
    }
    command
        .env("ACCOUNTS__SERVER__ADDR", "127.0.0.1:0")
        .env("ACCOUNTS__ADMIN__ADDR", "127.0.0.1:0");
    ServiceProcess::spawn(command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_run_serves_on_embedded_defaults_and_keeps_its_data_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let client = reqwest::Client::new();

    // First run: what the README shows.
    let mut first = accounts(dir.path());
    let (base, admin) = first.listening(WAIT);
    let Some(admin) = admin else {
        panic!("no admin listener announced")
    };
    first.wait_for_line("ready", WAIT);
    let created = client
        .post(format!("{base}/users"))
        .json(&json!({"email": "ann@example.com", "name": "Ann", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);
    let ready = client
        .get(format!("{base}/readyz?verbose"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let info = client
        .get(format!("{admin}/admin/info"))
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 200);
    let metrics = client
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"http_route="/users""#),
        "no RED metrics for /users in:\n{metrics}"
    );
    assert!(
        dir.path().join("data/accounts.db").is_file(),
        "no database file"
    );
    assert!(dir.path().join("data/flags.json").is_file(), "no flag file");

    first.terminate();
    let status = tokio::task::block_in_place(|| first.wait_exit(WAIT));
    assert!(status.success(), "{status:?}");

    // Second run in the same directory: the user is still there.
    let second = accounts(dir.path());
    let (base, _) = second.listening(WAIT);
    let users: Value = client
        .get(format!("{base}/users"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = users["items"]
        .as_array()
        .unwrap_or_else(|| panic!("no items in {users}"))
        .iter()
        .filter_map(|user| user["email"].as_str())
        .collect();
    assert_eq!(emails, ["ann@example.com"]);
}
