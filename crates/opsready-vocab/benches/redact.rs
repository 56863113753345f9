//! What masking credentials costs a log line: `redact_secrets` over the
//! text of typical messages and errors, with nothing to mask (the common
//! case, no copy) and with a URL's password or a query token to mask; and
//! `is_sensitive_name`, asked of every field's name.
//!
//! ```sh
//! cargo bench -p opsready-vocab --bench redact
//! ```

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use opsready_vocab::{is_sensitive_name, redact_secrets};

fn redact(c: &mut Criterion) {
    let mut group = c.benchmark_group("redact_secrets");
    for (name, text) in [
        ("short message, nothing to mask", "greeting someone"),
        (
            "error, nothing to mask",
            "error returned from database: relation \"users\" does not exist",
        ),
        (
            "error quoting a URL's password",
            "error connecting to postgres://app:hunter2@db:5432/accounts: connection refused",
        ),
        (
            "error quoting a query token",
            "error sending request for url (https://api.example/v1/items?page=2&access_token=abc.def.ghi)",
        ),
    ] {
        group.bench_function(name, |b| b.iter(|| redact_secrets(black_box(text)).len()));
    }
    group.finish();
    // Asked of every field name of every line a service logs.
    let mut group = c.benchmark_group("is_sensitive_name");
    for name in ["message", "user_id", "db_password"] {
        group.bench_function(name, |b| b.iter(|| is_sensitive_name(black_box(name))));
    }
    group.finish();
}

criterion_group!(benches, redact);
criterion_main!(benches);
