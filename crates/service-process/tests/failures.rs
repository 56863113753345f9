//! A failed wait says why: the process's exit status and the end of its
//! standard error, not only that a line did not come.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::process::Command;
use std::time::Duration;

use service_process::ServiceProcess;

fn panic_message(run: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(run)).unwrap_err();
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap()
}

fn shell(script: &str) -> Command {
    let mut command = Command::new("sh");
    command.args(["-c", script]);
    command
}

#[test]
fn a_process_that_exits_before_its_line_is_reported_with_its_status_and_stderr() {
    let service = ServiceProcess::spawn(shell(
        "echo starting; echo 'Error: cannot listen on 127.0.0.1:9091' >&2; exit 3",
    ));

    let message = panic_message(|| {
        service.wait_for_line("listening on", Duration::from_secs(20));
    });

    assert!(
        message.contains("the output ended before a line with \"listening on\""),
        "{message}"
    );
    assert!(message.contains("exit status: 3"), "{message}");
    assert!(
        message.contains("Error: cannot listen on 127.0.0.1:9091"),
        "{message}"
    );
}

#[test]
fn lines_until_returns_every_line_up_to_the_one_waited_for() {
    let service = ServiceProcess::spawn(shell("echo one; echo two; echo three; sleep 30"));

    let lines = service.lines_until("two", Duration::from_secs(20));
    let next = service.wait_for_line("three", Duration::from_secs(20));

    assert_eq!(lines, ["one", "two"]);
    assert_eq!(next, "three");
}

#[test]
fn run_returns_the_output_of_a_process_that_ends() {
    let output = ServiceProcess::run(
        shell("echo out; echo err >&2; exit 78"),
        Duration::from_secs(20),
    );

    assert_eq!(output.status.code(), Some(78));
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
}

#[test]
fn run_kills_a_process_still_running_at_the_deadline_and_shows_its_stderr() {
    let message = panic_message(|| {
        ServiceProcess::run(
            // Not `exec`: the shell's child holds the pipes after the kill.
            shell("echo 'serving anyway' >&2; sleep 30"),
            Duration::from_millis(300),
        );
    });

    assert!(
        message.contains("was still running after 300ms"),
        "{message}"
    );
    assert!(message.contains("serving anyway"), "{message}");
}
