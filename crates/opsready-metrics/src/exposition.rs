//! The two exposition formats: the Prometheus text format 0.0.4, and
//! OpenMetrics 1.0 with exemplars on the request-duration buckets, chosen by
//! the scraper's `Accept` header.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError, TryLockError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::HeaderValue;

use crate::catalog;

/// An exposition format a scraper can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// The Prometheus text format 0.0.4: what every scraper reads.
    Prometheus,
    /// OpenMetrics 1.0.0 text, with exemplars: what Prometheus asks for
    /// first.
    OpenMetrics,
}

impl Format {
    /// The format the `Accept` header of a scrape prefers: OpenMetrics when
    /// it is asked for with a weight no lower than the text format's,
    /// otherwise (also with no header) the Prometheus text format.
    ///
    /// ```
    /// use http::HeaderValue;
    /// use opsready_metrics::Format;
    ///
    /// // What Prometheus sends by default.
    /// let accept = HeaderValue::from_static(
    ///     "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    /// );
    /// assert_eq!(Format::negotiate(Some(&accept)), Format::OpenMetrics);
    /// assert_eq!(Format::negotiate(None), Format::Prometheus);
    ///
    /// // The most specific range decides: text/plain's 0.2, not */*'s 1.
    /// let accept = HeaderValue::from_static(
    ///     "application/openmetrics-text;q=0.5, text/plain;q=0.2, */*",
    /// );
    /// assert_eq!(Format::negotiate(Some(&accept)), Format::OpenMetrics);
    /// // A weight that is no number is no weight.
    /// let accept = HeaderValue::from_static("application/openmetrics-text, text/plain;q=nan");
    /// assert_eq!(Format::negotiate(Some(&accept)), Format::OpenMetrics);
    /// // Anything goes, as curl says: the text format.
    /// let accept = HeaderValue::from_static("*/*");
    /// assert_eq!(Format::negotiate(Some(&accept)), Format::Prometheus);
    /// ```
    pub fn negotiate(accept: Option<&HeaderValue>) -> Self {
        let Some(accept) = accept.and_then(|value| value.to_str().ok()) else {
            return Self::Prometheus;
        };
        // Each format's weight comes from the most specific range that
        // names it (RFC 9110, 12.5.1): `text/plain;q=0.2` outweighs `*/*`.
        // OpenMetrics only when named: `*/*` alone gets the text format.
        let mut openmetrics = 0.0_f32;
        let mut text = [None::<f32>; 3]; // `*/*`, `text/*`, `text/plain`
        for range in accept.split(',') {
            let mut parts = range.split(';');
            let media = parts.next().unwrap_or_default().trim();
            let weight = parts
                .filter_map(|param| param.split_once('='))
                .find(|(name, _)| name.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, q)| q.trim().parse::<f32>().ok())
                // `nan` and `inf` parse too; a weight is 0 to 1.
                .map_or(1.0, |q| {
                    if q.is_finite() {
                        q.clamp(0.0, 1.0)
                    } else {
                        0.0
                    }
                });
            let specificity = if media.eq_ignore_ascii_case("application/openmetrics-text") {
                openmetrics = openmetrics.max(weight);
                continue;
            } else if media.eq_ignore_ascii_case("text/plain") {
                2
            } else if media.eq_ignore_ascii_case("text/*") {
                1
            } else if media == "*/*" {
                0
            } else {
                continue;
            };
            let slot = &mut text[specificity];
            *slot = Some(slot.map_or(weight, |known| known.max(weight)));
        }
        let text = text.iter().rev().find_map(|weight| *weight).unwrap_or(0.0);
        if openmetrics > 0.0 && openmetrics >= text {
            Self::OpenMetrics
        } else {
            Self::Prometheus
        }
    }

    /// The `Content-Type` of an exposition in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Self::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// The request-duration histogram of one series: a count per bucket (not
/// cumulative; the last is `+Inf`) and the sum of durations, each an
/// atomic. Requests record into it through a `metrics::Histogram` handle
/// ([`metrics::HistogramFn`]); a request costs two additions, and nothing
/// is kept per request until the scrape, where the recorder's own
/// histograms keep each sample, with a clock reading, until drained.
#[derive(Debug)]
pub(crate) struct DurationCounts {
    bounds: Arc<[f64]>,
    counts: Box<[AtomicU64]>,
    /// In tenths of a microsecond: an integer sum adds in one instruction,
    /// where a float would need a compare-and-swap loop per sample. A `u64`
    /// of them holds 58,000 years of latency (one of nanoseconds held 584:
    /// about seven months of a thousand long polls of 30 s at once), and is
    /// held at its top should it ever wrap, as a counter that went down
    /// would read as a reset.
    sum_ticks: AtomicU64,
}

/// [`DurationCounts`]' unit of the sum.
const TICKS_PER_SECOND: f64 = 10_000_000.0;

impl DurationCounts {
    /// A histogram with these bucket bounds (seconds, ascending), and
    /// `+Inf`.
    pub(crate) fn new(bounds: Arc<[f64]>) -> Self {
        Self {
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            bounds,
            sum_ticks: AtomicU64::new(0),
        }
    }

    /// Appends the series' `_bucket` lines (cumulative, with `le`), `_sum`
    /// and `_count` in the Prometheus text format; `labels` is the series'
    /// label set without `le`, as [`label_text`] writes it.
    pub(crate) fn render(&self, out: &mut String, labels: &str) {
        let name = catalog::HTTP_SERVER_REQUEST_DURATION.name;
        let mut total = 0_u64;
        for (slot, count) in self.counts.iter().enumerate() {
            total = total.saturating_add(count.load(Ordering::Relaxed));
            match self.bounds.get(slot) {
                Some(le) => {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {total}");
                }
                None => {
                    let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {total}");
                }
            }
        }
        // Exact below 2^53 ticks (28 years), and a fraction of a second off
        // beyond.
        #[allow(clippy::cast_precision_loss)]
        let sum = self.sum_ticks.load(Ordering::Relaxed) as f64 / TICKS_PER_SECOND;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {total}");
    }
}

impl metrics::HistogramFn for DurationCounts {
    /// Counts a duration of `seconds` in the first bucket whose bound is at
    /// or above it.
    fn record(&self, seconds: f64) {
        let slot = self.bounds.partition_point(|le| *le < seconds);
        if let Some(count) = self.counts.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        // Negative or not a number: nothing to add to the sum.
        let ticks = Duration::try_from_secs_f64(seconds).map_or(0, |elapsed| {
            u64::try_from((elapsed.as_nanos() + 50) / 100).unwrap_or(u64::MAX)
        });
        let before = self.sum_ticks.fetch_add(ticks, Ordering::Relaxed);
        if before.checked_add(ticks).is_none() {
            // Wrapped: held at the top instead, flat rather than a reset.
            self.sum_ticks.store(u64::MAX, Ordering::Relaxed);
        }
    }
}

/// Appends the request-duration family: its help, its type and each of
/// `series` (label set, histogram), in the order given. Nothing when there
/// is no series yet, as for the recorder's own families.
pub(crate) fn duration_family(out: &mut String, series: &[(&str, &DurationCounts)]) {
    if series.is_empty() {
        return;
    }
    let def = &catalog::HTTP_SERVER_REQUEST_DURATION;
    let help = def.help.replace('\\', "\\\\").replace('\n', "\\n");
    let _ = write!(
        out,
        "# HELP {name} {help}\n# TYPE {name} {kind}\n",
        name = def.name,
        kind = def.kind.as_str(),
    );
    for (labels, counts) in series {
        counts.render(out, labels);
    }
    out.push('\n');
}

/// A recent exemplar of each bucket of one duration series: the trace of
/// a request that landed there (the first, then every
/// [`EXEMPLAR_EVERY`]th). Slot `i` belongs to bucket `i`; the last to
/// `+Inf`.
#[derive(Debug)]
pub(crate) struct Exemplars {
    slots: Mutex<Vec<Option<Exemplar>>>,
    /// Requests per bucket so far: only every [`EXEMPLAR_EVERY`]th (and the
    /// first) replaces the exemplar, so a busy series does not read the
    /// clock and take the lock for every request, while a rare bucket (the
    /// slow requests) still gets its first one.
    hits: Vec<AtomicU32>,
}

/// How often a bucket's exemplar is replaced: every this many requests.
const EXEMPLAR_EVERY: u32 = 16;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Exemplar {
    trace_id: u128,
    value: f64,
    /// Seconds since the Unix epoch.
    at: f64,
}

impl Exemplars {
    pub(crate) fn new(buckets: usize) -> Self {
        Self {
            slots: Mutex::new(vec![None; buckets + 1]),
            hits: (0..=buckets).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// Keeps `trace_id` as the exemplar of the bucket `value` falls in.
    pub(crate) fn record(&self, buckets: &[f64], value: f64, trace_id: u128) {
        let slot = buckets.partition_point(|le| *le < value);
        let hits = self
            .hits
            .get(slot)
            .map_or(0, |hits| hits.fetch_add(1, Ordering::Relaxed));
        if !hits.is_multiple_of(EXEMPLAR_EVERY) {
            return;
        }
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |since| since.as_secs_f64());
        // An exemplar is a sample: when another request holds the lock, a
        // later one is skipped rather than made to wait. A bucket's first
        // waits: a rare bucket (the slow requests an SRE wants a trace of)
        // may see no other for a long time.
        let slots = if hits == 0 {
            Some(self.slots.lock().unwrap_or_else(PoisonError::into_inner))
        } else {
            match self.slots.try_lock() {
                Ok(slots) => Some(slots),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        };
        if let Some(mut slots) = slots
            && let Some(entry) = slots.get_mut(slot)
        {
            *entry = Some(Exemplar {
                trace_id,
                value,
                at,
            });
        }
    }

    fn get(&self, slot: usize) -> Option<Exemplar> {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(slot)
            .copied()
            .flatten()
    }
}

/// Rewrites a Prometheus 0.0.4 exposition as OpenMetrics 1.0.0: counter
/// families lose the `_total` of their samples' name, help texts escape
/// quotes, blank lines go, the request-duration buckets get their exemplars
/// (`exemplars(labels)` finds a series' by its labels without `le`), and
/// `# EOF` ends it.
pub(crate) fn to_openmetrics<'a>(
    text: &str,
    buckets: &[f64],
    exemplars: impl Fn(&str) -> Option<&'a Exemplars>,
) -> String {
    let counters: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let bucket_prefix = format!("{}_bucket{{", catalog::HTTP_SERVER_REQUEST_DURATION.name);
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, unknown) = family(&counters, name);
            let kind = match kind {
                _ if unknown => "unknown",
                "untyped" => "unknown",
                kind => kind,
            };
            let _ = writeln!(out, "# TYPE {name} {kind}");
        } else if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let (name, _) = family(&counters, name);
            // The 0.0.4 format escapes backslashes and newlines already.
            let _ = writeln!(out, "# HELP {name} {}", help.replace('"', "\\\""));
        } else if line.starts_with('#') {
            // Other comments have no place in OpenMetrics.
        } else if let Some(labels) = line.strip_prefix(bucket_prefix.as_str()) {
            out.push_str(line);
            if let Some(exemplar) = bucket_exemplar(labels, buckets, &exemplars) {
                let _ = write!(
                    out,
                    " # {{trace_id=\"{:032x}\"}} {} {:.3}",
                    exemplar.trace_id, exemplar.value, exemplar.at
                );
            }
            out.push('\n');
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.push_str("# EOF\n");
    out
}

/// The name of a family in OpenMetrics, and whether it must be `unknown`:
/// OpenMetrics names a counter family without the `_total` its samples
/// carry, and a counter without it can only be `unknown`.
fn family<'t>(counters: &[&str], name: &'t str) -> (&'t str, bool) {
    if !counters.contains(&name) {
        return (name, false);
    }
    match name.strip_suffix("_total") {
        Some(base) => (base, false),
        None => (name, true),
    }
}

/// The exemplar of a bucket line, given what follows the metric name's `{`:
/// `method="GET",...,le="0.005"} 3`.
fn bucket_exemplar<'a>(
    labels: &str,
    buckets: &[f64],
    exemplars: &impl Fn(&str) -> Option<&'a Exemplars>,
) -> Option<Exemplar> {
    let (series, rest) = labels.rsplit_once("le=\"")?;
    let le = rest.split_once('"')?.0;
    let slot = if le == "+Inf" {
        buckets.len()
    } else {
        let bound: f64 = le.parse().ok()?;
        buckets
            .iter()
            .position(|b| (*b - bound).abs() <= f64::EPSILON * b.abs())?
    };
    exemplars(series.strip_suffix(',').unwrap_or(series))?.get(slot)
}

/// The label set as the exporter writes it, to find a series' exemplars in
/// its exposition.
pub(crate) fn label_text(labels: &[(&str, &str)]) -> String {
    let mut text = String::new();
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(name);
        text.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => text.push_str("\\\\"),
                '"' => text.push_str("\\\""),
                '\n' => text.push_str("\\n"),
                c => text.push(c),
            }
        }
        text.push('"');
    }
    text
}

/// The process families, read from `/proc` as the scrape happens, in the
/// Prometheus text format: the CPU time is a counter with fractions of a
/// second, which the recorder's integer counters cannot hold.
pub(crate) fn process_families(out: &mut String) {
    let process = crate::system::read_process();
    let mut family = |def: &catalog::MetricDef, value: Option<f64>| {
        // A value `/proc` did not give is left out, not written as zero.
        let Some(value) = value else {
            return;
        };
        let _ = write!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n\n",
            name = def.name,
            help = def.help,
            kind = def.kind.as_str(),
        );
    };
    family(&catalog::PROCESS_CPU_SECONDS_TOTAL, process.cpu_seconds);
    family(
        &catalog::PROCESS_RESIDENT_MEMORY_BYTES,
        process.resident_bytes,
    );
    family(&catalog::PROCESS_OPEN_FDS, process.open_fds);
    family(
        &catalog::PROCESS_START_TIME_SECONDS,
        process.start_time_seconds,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_buckets_first_exemplar_waits_for_a_busy_lock_and_later_ones_do_not() {
        let exemplars = Arc::new(Exemplars::new(2));
        let buckets = [0.1, 1.0];
        // Another request holds the lock while the first slow one lands.
        let held = exemplars.slots.lock().unwrap();
        let first = {
            let exemplars = Arc::clone(&exemplars);
            std::thread::spawn(move || exemplars.record(&buckets, 0.5, 7))
        };
        // Once it has counted itself, it is at the lock: one that skips a
        // busy lock is done soon after, one that waits is not done until
        // the lock is free. The lock is held a while to tell them apart.
        let counted = std::time::Instant::now() + Duration::from_secs(10);
        while exemplars.hits[1].load(Ordering::Relaxed) == 0 {
            assert!(
                std::time::Instant::now() < counted,
                "the request never counted"
            );
            std::thread::yield_now();
        }
        let held_until = std::time::Instant::now() + Duration::from_millis(200);
        while !first.is_finished() && std::time::Instant::now() < held_until {
            std::thread::yield_now();
        }
        drop(held);
        first.join().unwrap();
        // The next sampled one of the bucket, with the lock busy, is
        // skipped.
        for _ in 1..EXEMPLAR_EVERY {
            exemplars.record(&buckets, 0.5, 9);
        }
        let held = exemplars.slots.lock().unwrap();
        let sampled = {
            let exemplars = Arc::clone(&exemplars);
            std::thread::spawn(move || exemplars.record(&buckets, 0.2, 8))
        };
        sampled.join().unwrap();
        drop(held);

        assert_eq!(exemplars.get(1).map(|e| e.trace_id), Some(7));
    }

    fn accept(value: &'static str) -> Format {
        Format::negotiate(Some(&HeaderValue::from_static(value)))
    }

    #[test]
    fn openmetrics_is_served_only_when_preferred() {
        assert_eq!(accept("application/openmetrics-text"), Format::OpenMetrics);
        assert_eq!(
            accept("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"),
            Format::Prometheus
        );
        assert_eq!(
            accept("application/openmetrics-text;q=0"),
            Format::Prometheus
        );
        assert_eq!(accept("*/*"), Format::Prometheus);
        assert_eq!(accept("text/plain"), Format::Prometheus);
    }

    #[test]
    fn counters_lose_their_suffix_in_family_lines_and_keep_it_in_samples() {
        let text = "# HELP jobs_total Jobs \"done\".\n# TYPE jobs_total counter\njobs_total 3\n\n# TYPE odd counter\nodd 1\n";
        let out = to_openmetrics(text, &[], |_| None);
        assert_eq!(
            out,
            "# HELP jobs Jobs \\\"done\\\".\n# TYPE jobs counter\njobs_total 3\n# TYPE odd unknown\nodd 1\n# EOF\n"
        );
    }

    #[test]
    fn a_duration_bucket_carries_the_exemplar_of_its_own_bucket() {
        let buckets = [0.1, 1.0];
        let exemplars = Exemplars::new(buckets.len());
        exemplars.record(&buckets, 0.5, 0xabc);
        let series = label_text(&[("http_route", "/a")]);
        let text = "http_server_request_duration_seconds_bucket{http_route=\"/a\",le=\"0.1\"} 0\n\
                    http_server_request_duration_seconds_bucket{http_route=\"/a\",le=\"1\"} 1\n\
                    http_server_request_duration_seconds_bucket{http_route=\"/a\",le=\"+Inf\"} 1\n";
        let out = to_openmetrics(text, &buckets, |labels| {
            (labels == series).then_some(&exemplars)
        });
        let lines: Vec<&str> = out.lines().collect();
        assert!(!lines[0].contains('#'), "{out}");
        assert!(
            lines[1].starts_with(
                "http_server_request_duration_seconds_bucket{http_route=\"/a\",le=\"1\"} 1 # {trace_id=\"00000000000000000000000000000abc\"} 0.5 "
            ),
            "{out}"
        );
        assert!(!lines[2].contains("trace_id"), "{out}");
    }

    #[test]
    fn duration_buckets_are_cumulative_with_bounds_inclusive() {
        use metrics::HistogramFn as _;
        let counts = DurationCounts::new(Arc::from([0.1, 1.0].as_slice()));
        // On a bound counts in that bucket; past the last, only in +Inf.
        for seconds in [0.05, 0.1, 0.5, 1.0, 3.0] {
            counts.record(seconds);
        }
        let mut out = String::new();
        duration_family(&mut out, &[("http_route=\"/a\"", &counts)]);
        let name = catalog::HTTP_SERVER_REQUEST_DURATION.name;
        let expected = format!(
            "# HELP {name} {help}\n# TYPE {name} histogram\n\
             {name}_bucket{{http_route=\"/a\",le=\"0.1\"}} 2\n\
             {name}_bucket{{http_route=\"/a\",le=\"1\"}} 4\n\
             {name}_bucket{{http_route=\"/a\",le=\"+Inf\"}} 5\n\
             {name}_sum{{http_route=\"/a\"}} 4.65\n\
             {name}_count{{http_route=\"/a\"}} 5\n\n",
            help = catalog::HTTP_SERVER_REQUEST_DURATION.help,
        );
        assert_eq!(out, expected);
    }

    #[test]
    fn the_duration_sum_never_goes_down() {
        use metrics::HistogramFn as _;
        let counts = DurationCounts::new(Arc::from([0.1].as_slice()));
        counts.sum_ticks.store(u64::MAX - 5, Ordering::Relaxed);

        counts.record(1.0);

        assert_eq!(counts.sum_ticks.load(Ordering::Relaxed), u64::MAX);
    }

    #[test]
    fn no_duration_series_writes_no_family() {
        let mut out = String::new();
        duration_family(&mut out, &[]);
        assert_eq!(out, "");
    }

    #[test]
    fn label_text_escapes_like_the_exporter() {
        assert_eq!(
            label_text(&[("a", "x\"y"), ("b", "c\\d")]),
            "a=\"x\\\"y\",b=\"c\\\\d\""
        );
    }
}
