//! The `stuck` binary, shut down while a blocking job of it never ends: the
//! process exits within `shutdown.deadline`, with the status that says so.
//! A blocking job cannot be cancelled, and the runtime's drop at the end of
//! `main` would wait for it without a limit.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::Write as _;
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use service_process::ServiceProcess;

/// How long any wait for the service may last.
const WAIT: Duration = Duration::from_secs(30);

/// The `stuck` service with a shutdown deadline of `deadline`, in a
/// directory of its own, and the connection of a request whose blocking
/// job never ends.
fn stuck_service(dir: &tempfile::TempDir, deadline: &str) -> (ServiceProcess, TcpStream) {
    stuck_service_with(dir, deadline, &[])
}

/// [`stuck_service`] with more variables.
fn stuck_service_with(
    dir: &tempfile::TempDir,
    deadline: &str,
    vars: &[(&str, &str)],
) -> (ServiceProcess, TcpStream) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_stuck"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("STUCK") {
            command.env_remove(name);
        }
    }
    command
        .current_dir(dir.path())
        .env("STUCK__SERVER__ADDR", "127.0.0.1:0")
        .env("STUCK__ADMIN__ADDR", "127.0.0.1:0")
        .env("STUCK__SHUTDOWN__DRAIN_DELAY", "100ms")
        .env("STUCK__SHUTDOWN__DEADLINE", deadline)
        .env("STUCK__TELEMETRY__LOG__FORMAT", "json")
        .envs(vars.iter().copied());
    let service = ServiceProcess::spawn(command);
    let (base, _) = service.listening(WAIT);
    let addr = base.trim_start_matches("http://").to_owned();
    // The request that starts the job; its answer never comes.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(stream, "GET /stuck HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    service.wait_for_line("stuck job started", WAIT);
    (service, stream)
}

#[test]
fn a_second_signal_exits_at_once_and_says_so() {
    // Arrange: a drain that would last a minute.
    let dir = tempfile::tempdir().unwrap();
    let (mut service, stream) = stuck_service(&dir, "60s");
    service.terminate();
    service.wait_for_line("shutdown signal received", WAIT);

    // Act
    service.terminate();

    // Assert: status 130, and the line written before `exit`, which runs
    // no destructors.
    let status = service.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(130));
    service.wait_for_line("second shutdown signal: exiting at once", WAIT);
    drop(stream);
}

#[test]
fn a_blocking_job_that_outlived_its_request_does_not_keep_the_process_past_the_deadline() {
    // Arrange: the request is cut off at 200 ms, its job runs on.
    let dir = tempfile::tempdir().unwrap();
    let (mut service, stream) =
        stuck_service_with(&dir, "2s", &[("STUCK__HTTP__REQUEST_TIMEOUT", "200ms")]);
    let mut reader = std::io::BufReader::new(stream);
    let mut status_line = String::new();
    std::io::BufRead::read_line(&mut reader, &mut status_line).unwrap();
    assert!(status_line.contains(" 503 "), "{status_line}");

    // Act: the drain has nothing to wait for and ends at once.
    service.terminate();

    // Assert: the runtime's drop would wait for the job for ever.
    let status = service.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(opsready::DEADLINE_EXIT_CODE));
    service.wait_for_line("blocking jobs still running", WAIT);
}

#[test]
fn a_stuck_blocking_job_does_not_keep_the_process_past_the_shutdown_deadline() {
    // Arrange: the service, on a free port, with a 1 s deadline.
    let dir = tempfile::tempdir().unwrap();
    let (mut service, stream) = stuck_service(&dir, "1s");

    // Act
    service.terminate();

    // Assert: gone within the deadline and a margin for a loaded machine,
    // saying why.
    let status = service.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(opsready::DEADLINE_EXIT_CODE));
    service.wait_for_line("exiting now: the shutdown deadline has passed", WAIT);
    drop(stream);
}
