//! Black-box tests of the `minimal` binary: the real process, real signals,
//! real HTTP on ports the operating system picks.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod helpers;
mod lifecycle;
mod routes;
mod settings;
