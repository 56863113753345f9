//! The `stuck` binary, shut down while a blocking job of it never ends: the
//! process exits within `shutdown.deadline`, with the status that says so.
//! A blocking job cannot be cancelled, and the runtime's drop at the end of
//! `main` would wait for it without a limit.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The binary, killed when dropped so that a failed test leaves nothing
/// running.
struct Service(Child);

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for a line of `lines` that holds `text`, failing after `within`.
fn line_with(lines: &mpsc::Receiver<String>, text: &str, within: Duration) -> String {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(_) => panic!("no line with {text:?} within {within:?}"),
        }
    }
}

#[test]
fn a_stuck_blocking_job_does_not_keep_the_process_past_the_shutdown_deadline() {
    // Arrange: the service, on a free port, with a 1 s deadline.
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stuck"))
        .current_dir(dir.path())
        .env("STUCK__SERVER__ADDR", "127.0.0.1:0")
        .env("STUCK__SHUTDOWN__DRAIN_DELAY", "100ms")
        .env("STUCK__SHUTDOWN__DEADLINE", "1s")
        .env("STUCK__TELEMETRY__LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let service = Service(child);
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if sender.send(line).is_err() {
                return;
            }
        }
    });
    let listening = line_with(&lines, "listening on http://", Duration::from_secs(30));
    let addr = listening
        .split("listening on http://")
        .nth(1)
        .and_then(|rest| rest.split([',', '"']).next())
        .unwrap()
        .to_owned();
    // The request that starts the job; its answer never comes.
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(stream, "GET /stuck HTTP/1.1\r\nhost: {addr}\r\n\r\n").unwrap();
    line_with(&lines, "stuck job started", Duration::from_secs(10));

    // Act
    let signalled = Instant::now();
    let sent = Command::new("kill")
        .arg("-TERM")
        .arg(service.0.id().to_string())
        .status()
        .unwrap();
    assert!(sent.success());

    // Assert: gone within the deadline and a margin for a loaded machine,
    // saying why.
    let mut service = service;
    let status = loop {
        if let Some(status) = service.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            signalled.elapsed() < Duration::from_secs(15),
            "still running 15 s after SIGTERM, with a 1 s deadline"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(opsready::DEADLINE_EXIT_CODE));
    line_with(
        &lines,
        "exiting now: the shutdown deadline has passed",
        Duration::from_secs(5),
    );
    drop(stream);
}
