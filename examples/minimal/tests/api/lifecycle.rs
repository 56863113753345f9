use std::time::{Duration, Instant};

use service_process::ServiceProcess;

use crate::helpers::{DEADLINE, Service, minimal};

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_finishes_in_flight_work_and_exits_zero_within_the_deadline() {
    // Arrange
    let mut service = Service::start(&[
        // Long enough for the probes below to come in while it drains,
        // on a loaded machine.
        ("MINIMAL__SHUTDOWN__DRAIN_DELAY", "4s"),
        ("MINIMAL__SHUTDOWN__DEADLINE", "10s"),
    ]);
    service.wait_for_line("ready");
    let in_flight = tokio::spawn(
        service
            .client
            .get(format!("{}/work?ms=1500", service.base))
            .send(),
    );
    // In flight for sure: the handler has logged that it started.
    service.wait_for_line("work started");

    // Act
    let signalled = Instant::now();
    service.terminate();
    service.wait_for_line("draining");
    let ready = service.get("/readyz").await.status();
    let live = service.get("/livez").await.status();
    let in_flight = in_flight.await.unwrap().unwrap();
    let status = tokio::task::block_in_place(|| service.wait_exit());

    // Assert
    assert_eq!(ready, 503);
    assert_eq!(live, 200);
    assert_eq!(in_flight.status(), 200);
    assert!(status.success(), "{status:?}");
    // Within the 10 s deadline, with a margin for a loaded machine.
    assert!(signalled.elapsed() < Duration::from_secs(15));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_sigterm_exits_at_once() {
    let mut service = Service::start(&[
        ("MINIMAL__SHUTDOWN__DRAIN_DELAY", "20s"),
        ("MINIMAL__SHUTDOWN__DEADLINE", "30s"),
    ]);
    service.wait_for_line("ready");

    let signalled = Instant::now();
    service.terminate();
    service.wait_for_line("draining");
    service.terminate();
    let status = tokio::task::block_in_place(|| service.wait_exit());

    assert_eq!(status.code(), Some(130));
    // Far sooner than the 20 s drain delay the first signal started.
    assert!(signalled.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_request_timeout_the_drain_leaves_no_room_for_is_warned_about_at_start() {
    // Started at the end of a 5 s drain, a request may run until 25 s
    // under the default 20 s timeout: past a 10 s deadline, not past 30 s.
    let start = |deadline: &str| {
        let dir = tempfile::TempDir::new().unwrap();
        let env = [
            ("MINIMAL__SHUTDOWN__DRAIN_DELAY", "5s"),
            ("MINIMAL__SHUTDOWN__DEADLINE", deadline),
            ("MINIMAL__TELEMETRY__LOG__FORMAT", "json"),
        ];
        let process = ServiceProcess::spawn(minimal(&env, dir.path()));
        let lines = process.lines_until("listening on http://", DEADLINE);
        lines
            .into_iter()
            .filter(|line| line.contains("outlive the shutdown deadline"))
            .map(|line| serde_json::from_str::<serde_json::Value>(&line).unwrap())
            .collect::<Vec<_>>()
    };

    let warned = start("10s");
    let quiet = start("30s");

    assert_eq!(warned.len(), 1, "{warned:?}");
    assert_eq!(warned[0]["level"], "WARN");
    assert_eq!(warned[0]["http.request_timeout"], "20s");
    assert_eq!(warned[0]["shutdown.drain_delay"], "5s");
    assert_eq!(warned[0]["shutdown.deadline"], "10s");
    assert!(quiet.is_empty(), "{quiet:?}");
}
