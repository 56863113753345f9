//! Black-box tests of the accounts service: the real application, built
//! in-process by `Application::build` on a port the operating system picks,
//! with a database of its own per test, spoken to over HTTP.
//!
//! Every test runs on SQLite (a file in a temporary directory) and, when
//! `OPSREADY_TEST_DATABASE_URL` names a Postgres server
//! (`postgres://USER@HOST:PORT/DB`, a role that may create databases), on
//! a fresh Postgres database too; without it the Postgres variants say
//! they were skipped and pass. `TEST_LOG=1` shows the service's logs.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

#[macro_use]
mod helpers;
mod billing;
mod health;
mod openapi;
mod users;
