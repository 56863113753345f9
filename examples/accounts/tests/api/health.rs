use serde_json::Value;

use crate::helpers::{Backend, TestApp};

on_both_databases!(
    the_service_is_ready_once_migrations_ran_with_the_database_checked,
    readiness_turns_503_when_the_database_is_unreachable,
    pool_usage_and_acquire_waits_are_on_the_metrics,
);

async fn the_service_is_ready_once_migrations_ran_with_the_database_checked(app: TestApp) {
    let response = app.get("/readyz").await;

    assert_eq!(response.status(), 200);
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["status"], "pass");
    assert_eq!(
        report["checks"]["database"][0]["status"], "pass",
        "{report}"
    );
    let verbose = app.get("/readyz?verbose").await.text().await.unwrap();
    assert!(verbose.contains("[+]database ok"), "{verbose}");
}

async fn readiness_turns_503_when_the_database_is_unreachable(app: TestApp) {
    // Arrange
    assert_eq!(app.get("/readyz").await.status(), 200);

    // Act
    match app.backend {
        // A real outage: the database is gone, open connections cut.
        Backend::Postgres => app.scratch.drop_postgres_database().await,
        // SQLite keeps working on a deleted file through its open handles,
        // so the pool is closed instead: no connection can be had, as
        // when a server is out of reach.
        Backend::Sqlite => app.database.close().await,
    }

    // Assert: within the check's cache interval, readiness fails and
    // says why, and a request answers a problem rather than hanging.
    app.wait_for("readiness to fail", || async {
        app.get("/readyz").await.status() == 503
    })
    .await;
    let verbose = app.get("/readyz?verbose").await.text().await.unwrap();
    assert!(verbose.contains("[-]database failed"), "{verbose}");
    assert_eq!(app.get("/livez").await.status(), 200);
    let request = app.get("/users").await;
    assert!(request.status().is_server_error(), "{}", request.status());
    let problem = request.text().await.unwrap();
    assert!(!problem.contains("sqlx"), "{problem}");
}

async fn pool_usage_and_acquire_waits_are_on_the_metrics(app: TestApp) {
    app.create_user("ann@example.com").await;

    let metrics = app.get("/metrics").await.text().await.unwrap();

    assert!(
        metrics.contains(r#"db_client_connection_count{pool_name="database",state="idle"}"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"db_client_connection_max{pool_name="database"} 4"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"db_client_connection_wait_time_seconds_count{pool_name="database"}"#),
        "{metrics}"
    );
}
