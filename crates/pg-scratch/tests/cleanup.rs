//! A guard's clean-up ends, even when a connection the test left open
//! holds a lock on the scratch schema: the test fails or passes on its
//! own merits instead of hanging in the guard's drop.

#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::mpsc;
use std::time::Duration;

use pg_scratch::Scratch;
use sqlx::{Connection as _, Executor as _, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_locked_by_an_open_transaction_does_not_hang_the_guards_drop() {
    let Some(scratch) = Scratch::schema("scratch_lock_") else {
        return;
    };
    let mut holder = PgConnection::connect(&scratch.url).await.unwrap();
    holder
        .execute(&*format!(
            r#"CREATE SCHEMA "{0}"; CREATE TABLE "{0}".t (x int)"#,
            scratch.name
        ))
        .await
        .unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute(&*format!(
            r#"LOCK TABLE "{}".t IN ACCESS EXCLUSIVE MODE"#,
            scratch.name
        ))
        .await
        .unwrap();
    let name = scratch.name.clone();

    // Drop the guard on a thread of its own, as a test's end would.
    let (done, dropped) = mpsc::channel();
    std::thread::spawn(move || {
        drop(scratch);
        let _ = done.send(());
    });
    let ended = tokio::task::spawn_blocking(move || dropped.recv_timeout(Duration::from_secs(60)))
        .await
        .unwrap();
    // The lock goes, and with it the schema, dropped by hand.
    holder.execute("ROLLBACK").await.unwrap();
    holder
        .execute(&*format!(r#"DROP SCHEMA IF EXISTS "{name}" CASCADE"#))
        .await
        .unwrap();

    assert!(ended.is_ok(), "the guard's drop did not end within 60 s");
}
