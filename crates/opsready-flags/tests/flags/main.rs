//! Black-box tests of opsready-flags: properties of evaluation and
//! bucketing, and changes made concurrently, audited and rolled back.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

mod changes;
mod helpers;
mod properties;
