//! The cost of one flag evaluation with 1,000 flags loaded: a boolean flag
//! with 10 rules (the last one matching, or none), the same with two
//! conditions per rule, a percentage rollout, and an unknown key. Checks
//! first, with a counting global allocator, that an evaluation allocates
//! nothing.
//!
//! ```sh
//! cargo bench -p opsready-flags --bench evaluate -- --warm-up-time 1 --measurement-time 2
//! ```
//!
//! Besides criterion's estimates, each case prints the fastest of 40
//! batches: on a shared machine the mean drifts with the neighbours, the
//! minimum much less.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout, clippy::panic)]

use std::alloc::System;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use opsready_flags::{
    Condition, EvaluationContext, Flag, Flags, MemoryStore, Rollout, Rule, bucket,
};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

// Counts every allocation of the process; a `Region` reads the difference.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Ten rules of one condition: `plan` equals `plan-0` … `plan-9`.
const RULES: &str = "bench.rules";
/// Ten rules of two conditions: `seats >= 1` and `plan` equals `plan-i`.
const RULES_2: &str = "bench.rules-two-conditions";
/// A 50% rollout.
const ROLLOUT: &str = "bench.rollout";
const UNKNOWN: &str = "no.such.flag";

fn flags() -> Flags {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    runtime.block_on(async {
        let flags = Flags::new(MemoryStore::new()).await.unwrap();
        let filler = (0..997).map(|i| {
            Flag::boolean(format!("filler.flag-{i}"))
                .rule(Rule::new("on").when(Condition::equals("plan", "pro")))
        });
        let rules = (0..10).fold(Flag::boolean(RULES), |flag, i| {
            flag.rule(Rule::new("on").when(Condition::equals("plan", format!("plan-{i}"))))
        });
        let rules_2 = (0..10).fold(Flag::boolean(RULES_2), |flag, i| {
            flag.rule(
                Rule::new("on")
                    .when(Condition::gte("seats", 1.0))
                    .when(Condition::equals("plan", format!("plan-{i}"))),
            )
        });
        let rollout = Flag::boolean(ROLLOUT).rollout(Rollout::new("on", 50.0));
        let declared = flags
            .declare(filler.chain([rules, rules_2, rollout]))
            .await
            .unwrap();
        assert_eq!(declared.len(), 1_000);
        flags
    })
}

/// Evaluates `key` many times and fails the bench if any evaluation
/// allocated.
fn assert_no_allocation(name: &str, flags: &Flags, key: &str, ctx: &EvaluationContext) {
    const RUNS: usize = 10_000;
    // The first loads on a thread may set up arc-swap's per-thread state.
    for _ in 0..100 {
        black_box(flags.bool_value(key, ctx, false));
        black_box(flags.bool_details(key, ctx, false));
    }
    let region = Region::new(ALLOCATOR);
    for _ in 0..RUNS {
        black_box(flags.bool_value(black_box(key), black_box(ctx), false));
        black_box(flags.bool_details(black_box(key), black_box(ctx), false));
    }
    let change = region.change();
    println!(
        "{name}: {} allocations in {} evaluations",
        change.allocations,
        2 * RUNS
    );
    assert_eq!(change.allocations, 0, "{name} allocated");
    assert_eq!(change.reallocations, 0, "{name} reallocated");
}

/// The fastest of 40 batches, in nanoseconds per evaluation.
fn fastest(flags: &Flags, key: &str, ctx: &EvaluationContext) -> f64 {
    const BATCH: u32 = 20_000;
    (0..40)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..BATCH {
                black_box(flags.bool_value(black_box(key), black_box(ctx), false));
            }
            start.elapsed().as_secs_f64() * 1e9 / f64::from(BATCH)
        })
        .fold(f64::INFINITY, f64::min)
}

fn evaluate(c: &mut Criterion) {
    let flags = flags();
    let last_rule = EvaluationContext::new()
        .targeting_key("user-42")
        .attribute("seats", 12)
        .attribute("plan", "plan-9");
    let no_rule = EvaluationContext::new()
        .targeting_key("user-42")
        .attribute("seats", 12)
        .attribute("plan", "free");
    let keyed = EvaluationContext::new().targeting_key("user-42");

    let cases = [
        ("10 rules, last matches", RULES, &last_rule),
        ("10 rules, none match", RULES, &no_rule),
        (
            "10 rules of 2 conditions, last matches",
            RULES_2,
            &last_rule,
        ),
        ("10 rules of 2 conditions, none match", RULES_2, &no_rule),
        ("rollout 50%", ROLLOUT, &keyed),
        ("unknown key", UNKNOWN, &keyed),
    ];
    let in_rollout = bucket(ROLLOUT, "user-42") < 5_000;
    let expected = [true, false, true, false, in_rollout, false];
    for ((name, key, ctx), expected) in cases.into_iter().zip(expected) {
        assert_eq!(
            flags.bool_value(key, ctx, false),
            expected,
            "{name}: wrong outcome"
        );
        assert_no_allocation(name, &flags, key, ctx);
    }
    for (name, key, ctx) in cases {
        println!("{name}: fastest batch {:.1} ns", fastest(&flags, key, ctx));
    }

    let mut group = c.benchmark_group("bool evaluation, 1000 flags");
    for (name, key, ctx) in cases {
        group.bench_function(name, |b| {
            b.iter(|| flags.bool_value(black_box(key), black_box(ctx), false));
        });
    }
    group.bench_function("10 rules, last matches, with details", |b| {
        b.iter(|| flags.bool_details(black_box(RULES), black_box(&last_rule), false));
    });
    group.finish();
}

criterion_group!(benches, evaluate);
criterion_main!(benches);
