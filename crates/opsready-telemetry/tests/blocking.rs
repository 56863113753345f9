//! The blocking-work helper: span parentage and the concurrency bound. This
//! binary installs a global subscriber that records span parents.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};
use std::time::{Duration, Instant};

use opsready_telemetry::Blocking;
use tracing::Subscriber;
use tracing::span::{Attributes, Id};
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;

/// A span's name and its parent's name.
type Lineage = (String, Option<String>);

/// Span id → lineage.
#[derive(Clone, Default)]
struct Parents(Arc<Mutex<HashMap<u64, Lineage>>>);

impl<S> tracing_subscriber::Layer<S> for Parents
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let parent = ctx
            .span(id)
            .and_then(|span| span.parent())
            .map(|parent| parent.name().to_owned());
        self.0
            .lock()
            .unwrap()
            .insert(id.into_u64(), (attrs.metadata().name().to_owned(), parent));
    }
}

fn parents() -> &'static Parents {
    static PARENTS: OnceLock<Parents> = OnceLock::new();
    PARENTS.get_or_init(|| {
        let parents = Parents::default();
        let subscriber = tracing_subscriber::registry().with(parents.clone());
        tracing::subscriber::set_global_default(subscriber).unwrap();
        parents
    })
}

#[tokio::test]
async fn a_job_runs_in_a_blocking_span_whose_parent_is_the_callers_span() {
    let parents = parents();
    let blocking = Blocking::new(2);
    let outer = tracing::info_span!("handling_signup");

    let job = blocking.run(|| {
        let current = tracing::Span::current();
        (
            current.metadata().map(|m| m.name()),
            current.id().map(|id| id.into_u64()),
        )
    });
    let inside = tracing::Instrument::instrument(job, outer).await.unwrap();

    assert_eq!(inside.0, Some("blocking"));
    let (name, parent) = parents.0.lock().unwrap()[&inside.1.unwrap()].clone();
    assert_eq!(name, "blocking");
    assert_eq!(parent.as_deref(), Some("handling_signup"));
}

#[tokio::test(flavor = "multi_thread")]
async fn no_more_jobs_run_at_once_than_the_bound() {
    parents();
    let blocking = Blocking::new(2);
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));

    let jobs: Vec<_> = (0..6)
        .map(|_| {
            let (blocking, running, most, gate) = (
                blocking.clone(),
                Arc::clone(&running),
                Arc::clone(&most),
                Arc::clone(&gate),
            );
            tokio::spawn(async move {
                blocking
                    .run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        gate.lock().unwrap().recv().unwrap();
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                    .unwrap();
            })
        })
        .collect();

    // Wait (with a deadline) until the bound is reached, then hold there.
    let give_up = Instant::now() + Duration::from_secs(10);
    while running.load(Ordering::SeqCst) < 2 {
        assert!(Instant::now() < give_up, "the jobs never started");
        tokio::task::yield_now().await;
    }
    let at_the_bound = (blocking.running(), running.load(Ordering::SeqCst));
    for _ in 0..6 {
        release.send(()).unwrap();
    }
    for job in jobs {
        job.await.unwrap();
    }

    assert_eq!(at_the_bound, (2, 2));
    assert_eq!(most.load(Ordering::SeqCst), 2);
    assert_eq!(blocking.running(), 0);
}

#[tokio::test]
async fn a_panicking_job_is_an_error_not_a_crash() {
    parents();
    let blocking = Blocking::new(1);

    let outcome = blocking.run(|| -> u8 { panic!("job exploded") }).await;
    let after = blocking.run(|| 7).await;

    assert!(outcome.unwrap_err().is_panic());
    assert_eq!(after.unwrap(), 7, "the slot was given back");
}

#[tokio::test]
async fn a_panicking_job_is_observed_like_any_other() {
    parents();
    let observed = Arc::new(Mutex::new(Vec::new()));
    let blocking = Blocking::new(1).with_observer({
        let observed = Arc::clone(&observed);
        move |_queue_wait, run_time| observed.lock().unwrap().push(run_time)
    });

    let outcome = blocking
        .run(|| -> u8 {
            std::thread::sleep(Duration::from_millis(20));
            panic!("job exploded")
        })
        .await;

    assert!(outcome.unwrap_err().is_panic());
    let observed = observed.lock().unwrap().clone();
    assert_eq!(observed.len(), 1, "{observed:?}");
    assert!(observed[0] >= Duration::from_millis(20), "{observed:?}");
}
