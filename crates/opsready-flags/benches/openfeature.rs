//! What OpenFeature costs: one boolean flag with 10 rules (the last one
//! matching, or none), 1,000 flags loaded, evaluated
//!
//! 1. directly with `Flags::bool_value`;
//! 2. through the `open-feature` SDK's client with `OpenFeatureProvider`
//!    (and, to split the cost, by calling the provider without the client);
//! 3. through the same client with flagd's in-process evaluator, the
//!    `flagd-evaluation-engine` crate (JSONLogic), behind a provider that
//!    does what `open-feature-flagd`'s file resolver does per call, less its
//!    cache. That crate itself is not used: its build compiles protobuf
//!    schemas and needs `protoc` installed.
//!
//! ```sh
//! cargo bench -p opsready-flags --features openfeature --bench openfeature -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Besides criterion's estimates, each case prints the fastest of 40
//! batches and the allocations per evaluation. The SDK calls run on a
//! current-thread tokio runtime.

#![allow(missing_docs, clippy::unwrap_used, clippy::print_stdout, clippy::panic)]

use std::alloc::System;
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, criterion_group, criterion_main};
use flagd_evaluation_engine::{FeatureFlag, FlagParser, FlagdEvaluationError, Operator};
use open_feature::provider::{FeatureProvider, ProviderMetadata, ResolutionDetails};
use open_feature::{
    Client, EvaluationContext as OfContext, EvaluationError, EvaluationErrorCode, EvaluationReason,
    EvaluationResult, OpenFeature, StructValue, async_trait,
};
use opsready_flags::{
    Condition, EvaluationContext, Flag, Flags, MemoryStore, OpenFeatureProvider, Rule,
};
use serde_json::{Value, json};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tokio::runtime::Runtime;
use tokio::sync::RwLock;

// Counts every allocation of the process; a `Region` reads the difference.
#[global_allocator]
static ALLOCATOR: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FLAGS: usize = 1_000;
/// Ten rules of one condition: `plan` equals `plan-0` … `plan-9`.
const RULES: &str = "bench.rules";

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// 999 one-rule flags and [`RULES`], in our definitions.
fn flags(runtime: &Runtime) -> Flags {
    runtime.block_on(async {
        let flags = Flags::new(MemoryStore::new()).await.unwrap();
        let filler = (0..FLAGS - 1).map(|i| {
            Flag::boolean(format!("filler.flag-{i}"))
                .rule(Rule::new("on").when(Condition::equals("plan", "pro")))
        });
        let rules = (0..10).fold(Flag::boolean(RULES), |flag, i| {
            flag.rule(Rule::new("on").when(Condition::equals("plan", format!("plan-{i}"))))
        });
        let declared = flags.declare(filler.chain([rules])).await.unwrap();
        assert_eq!(declared.len(), FLAGS);
        flags
    })
}

/// The same flags as a flagd flag set: each rule a branch of a JSONLogic
/// `if`, whose `null` serves the default variant.
fn flagd_flags() -> HashMap<String, FeatureFlag> {
    let variants = json!({ "on": true, "off": false });
    let mut set = serde_json::Map::new();
    for i in 0..FLAGS - 1 {
        set.insert(
            format!("filler.flag-{i}"),
            json!({
                "state": "ENABLED",
                "variants": variants,
                "defaultVariant": "off",
                "targeting": { "if": [{ "==": [{ "var": "plan" }, "pro"] }, "on", null] },
            }),
        );
    }
    let mut branches: Vec<Value> = (0..10)
        .flat_map(|i| {
            [
                json!({ "==": [{ "var": "plan" }, format!("plan-{i}")] }),
                json!("on"),
            ]
        })
        .collect();
    branches.push(Value::Null);
    set.insert(
        RULES.to_owned(),
        json!({
            "state": "ENABLED",
            "variants": variants,
            "defaultVariant": "off",
            "targeting": { "if": branches },
        }),
    );
    let parsed = FlagParser::parse_string(&json!({ "flags": set }).to_string()).unwrap();
    assert_eq!(parsed.flags.len(), FLAGS);
    parsed.flags
}

/// flagd's in-process evaluation as `open-feature-flagd`'s file resolver
/// does it on each call without its cache: read the store under an async
/// lock, clone the flag, evaluate its targeting with the engine's
/// `Operator`, look the variant up.
struct FlagdInProcess {
    flags: RwLock<HashMap<String, FeatureFlag>>,
    operator: Operator,
    metadata: ProviderMetadata,
}

impl FlagdInProcess {
    fn new(flags: HashMap<String, FeatureFlag>) -> Self {
        Self {
            flags: RwLock::new(flags),
            operator: Operator::new(),
            metadata: ProviderMetadata::new("flagd in-process (bench)"),
        }
    }

    async fn resolve<T>(
        &self,
        key: &str,
        ctx: &OfContext,
        read: impl Fn(&Value) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let flag = self.flags.read().await.get(key).cloned().ok_or_else(|| {
            failure(
                EvaluationErrorCode::FlagNotFound,
                format!("Flag {key} not found"),
            )
        })?;
        if flag.state == "DISABLED" {
            return Err(failure(
                EvaluationErrorCode::FlagNotFound,
                format!("Flag {key} is disabled"),
            ));
        }
        let targeting = flag.get_targeting();
        let (variant, reason) = if targeting == "{}" {
            (flag.default_variant, EvaluationReason::Static)
        } else {
            match self
                .operator
                .apply(key, &targeting, ctx)
                .map_err(|e: FlagdEvaluationError| {
                    failure(EvaluationErrorCode::ParseError, e.to_string())
                })? {
                Some(variant) => (variant, EvaluationReason::TargetingMatch),
                None => (flag.default_variant, EvaluationReason::Default),
            }
        };
        let value = flag.variants.get(&variant).and_then(read).ok_or_else(|| {
            failure(
                EvaluationErrorCode::TypeMismatch,
                format!("Value for flag {key} is not of the type asked"),
            )
        })?;
        Ok(ResolutionDetails {
            value,
            variant: Some(variant),
            reason: Some(reason),
            flag_metadata: None,
        })
    }
}

fn failure(code: EvaluationErrorCode, message: String) -> EvaluationError {
    EvaluationError {
        code,
        message: Some(message),
    }
}

#[async_trait]
impl FeatureProvider for FlagdInProcess {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    async fn resolve_bool_value(
        &self,
        key: &str,
        ctx: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        self.resolve(key, ctx, Value::as_bool).await
    }

    async fn resolve_int_value(
        &self,
        key: &str,
        ctx: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve(key, ctx, Value::as_i64).await
    }

    async fn resolve_float_value(
        &self,
        key: &str,
        ctx: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve(key, ctx, Value::as_f64).await
    }

    async fn resolve_string_value(
        &self,
        key: &str,
        ctx: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        self.resolve(key, ctx, |v| v.as_str().map(str::to_owned))
            .await
    }

    async fn resolve_struct_value(
        &self,
        _key: &str,
        _ctx: &OfContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        Err(failure(
            EvaluationErrorCode::General("not benchmarked".to_owned()),
            "structs are not benchmarked".to_owned(),
        ))
    }
}

/// An OpenFeature client of its own API instance, with `provider`.
fn client(runtime: &Runtime, provider: impl FeatureProvider) -> Client {
    runtime.block_on(async {
        let mut api = OpenFeature::default();
        api.set_provider(provider).await;
        api.create_client()
    })
}

/// Checks that `evaluate` serves `expected`, then prints the fastest of
/// 40 batches, in nanoseconds per evaluation, and the allocations per
/// evaluation.
fn report<F, Fut>(
    runtime: &Runtime,
    case: &str,
    name: &str,
    batch: u32,
    expected: bool,
    evaluate: F,
) where
    F: Fn() -> Fut,
    Fut: Future<Output = bool>,
{
    runtime.block_on(async {
        assert_eq!(evaluate().await, expected, "{case}, {name}: wrong outcome");
        for _ in 0..100 {
            black_box(evaluate().await);
        }
        let region = Region::new(ALLOCATOR);
        for _ in 0..batch {
            black_box(evaluate().await);
        }
        let allocations = region.change().allocations as f64 / f64::from(batch);
        let mut fastest = f64::INFINITY;
        for _ in 0..40 {
            let start = Instant::now();
            for _ in 0..batch {
                black_box(evaluate().await);
            }
            fastest = fastest.min(start.elapsed().as_secs_f64() * 1e9 / f64::from(batch));
        }
        println!(
            "{case}, {name}: fastest batch {fastest:.1} ns, {allocations:.1} allocations per evaluation"
        );
    });
}

fn openfeature(c: &mut Criterion) {
    let runtime = runtime();
    let flags = flags(&runtime);
    let provider = OpenFeatureProvider::new(flags.clone());
    let ours = client(&runtime, provider.clone());
    let flagd = client(&runtime, FlagdInProcess::new(flagd_flags()));

    for (case, plan, expected) in [
        ("10 rules, last matches", "plan-9", true),
        ("10 rules, none match", "free", false),
    ] {
        let ctx = EvaluationContext::new()
            .targeting_key("user-42")
            .attribute("seats", 12)
            .attribute("plan", plan);
        let of_ctx = OfContext::default()
            .with_targeting_key("user-42")
            .with_custom_field("seats", 12)
            .with_custom_field("plan", plan);

        report(
            &runtime,
            case,
            "Flags::bool_value",
            20_000,
            expected,
            || {
                let value = flags.bool_value(black_box(RULES), black_box(&ctx), false);
                async move { value }
            },
        );
        report(
            &runtime,
            case,
            "OpenFeatureProvider::resolve_bool_value, no client",
            2_000,
            expected,
            || async {
                provider
                    .resolve_bool_value(black_box(RULES), black_box(&of_ctx))
                    .await
                    .unwrap()
                    .value
            },
        );
        report(
            &runtime,
            case,
            "OpenFeature client + OpenFeatureProvider",
            2_000,
            expected,
            || async {
                ours.get_bool_value(black_box(RULES), Some(black_box(&of_ctx)), None)
                    .await
                    .unwrap_or(false)
            },
        );
        report(
            &runtime,
            case,
            "OpenFeature client + flagd in-process engine",
            200,
            expected,
            || async {
                flagd
                    .get_bool_value(black_box(RULES), Some(black_box(&of_ctx)), None)
                    .await
                    .unwrap_or(false)
            },
        );

        let mut group = c.benchmark_group(format!("bool evaluation, 1000 flags, {case}"));
        group.bench_function("Flags::bool_value", |b| {
            b.iter(|| flags.bool_value(black_box(RULES), black_box(&ctx), false));
        });
        group.bench_function("OpenFeature client + OpenFeatureProvider", |b| {
            b.to_async(&runtime).iter(|| async {
                ours.get_bool_value(black_box(RULES), Some(black_box(&of_ctx)), None)
                    .await
                    .unwrap_or(false)
            });
        });
        group.bench_function("OpenFeature client + flagd in-process engine", |b| {
            b.to_async(&runtime).iter(|| async {
                flagd
                    .get_bool_value(black_box(RULES), Some(black_box(&of_ctx)), None)
                    .await
                    .unwrap_or(false)
            });
        });
        group.finish();
    }
}

criterion_group!(benches, openfeature);
criterion_main!(benches);
