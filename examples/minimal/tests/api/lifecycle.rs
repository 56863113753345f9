use std::time::{Duration, Instant};

use crate::helpers::Service;

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
