//! W3C trace context (`traceparent`) and request ids.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderValue;
use opsready_vocab::Traceparent;

/// A 16-byte W3C trace id, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(u128);

/// An 8-byte W3C span id, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(u64);

impl TraceId {
    /// A random trace id.
    pub fn random() -> Self {
        loop {
            let id = fastrand::u128(..);
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// The id as an integer.
    pub fn to_u128(self) -> u128 {
        self.0
    }

    /// The id of an integer; `None` for zero, which is not an id.
    pub fn from_u128(id: u128) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }
}

impl SpanId {
    /// A random span id.
    pub fn random() -> Self {
        loop {
            let id = fastrand::u64(..);
            if id != 0 {
                return Self(id);
            }
        }
    }

    /// The id as an integer.
    pub fn to_u64(self) -> u64 {
        self.0
    }

    /// The id of an integer; `None` for zero, which is not an id.
    pub fn from_u64(id: u64) -> Option<Self> {
        (id != 0).then_some(Self(id))
    }
}

/// The two lower-case hex digits of each byte value.
const HEX_PAIRS: [[u8; 2]; 256] = {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut pairs = [[0; 2]; 256];
    let mut byte = 0;
    while byte < 256 {
        pairs[byte] = [HEX[byte >> 4], HEX[byte & 0xf]];
        byte += 1;
    }
    pairs
};

/// Lower-case hex of the low `N / 2` bytes of `value`, `N` digits, most
/// significant first: a table lookup per byte.
fn hex<const N: usize>(value: u128) -> [u8; N] {
    let bytes = value.to_be_bytes();
    let mut out = [b'0'; N];
    for (pair, byte) in out
        .chunks_exact_mut(2)
        .zip(&bytes[bytes.len().saturating_sub(N / 2)..])
    {
        pair.copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
    }
    out
}

impl TraceId {
    /// The 32 hex digits, without allocating.
    pub fn to_hex(self) -> HexId<32> {
        HexId(hex::<32>(self.0))
    }
}

impl SpanId {
    /// The 16 hex digits, without allocating.
    pub fn to_hex(self) -> HexId<16> {
        HexId(hex::<16>(u128::from(self.0)))
    }
}

/// An id in hex, on the stack.
///
/// Aligned to a word, so that [`HexId::as_str`]'s UTF-8 check reads it a
/// word at a time.
#[derive(Debug, Clone, Copy)]
#[repr(align(8))]
pub struct HexId<const N: usize>([u8; N]);

impl<const N: usize> HexId<N> {
    /// The digits.
    pub fn as_str(&self) -> &str {
        // Only ASCII hex digits are ever written.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.to_hex().as_str())
    }
}

/// The trace context of one request: the trace it belongs to, the caller's
/// span (if it came with a `traceparent`) and this service's span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace, continued from the caller or new.
    pub trace_id: TraceId,
    /// The caller's span, when the request carried a valid `traceparent`.
    pub parent_id: Option<SpanId>,
    /// This service's span for the request.
    pub span_id: SpanId,
    /// The caller's sampling decision, or for a new trace this service's
    /// (`telemetry.sample_ratio`, decided from the trace id as
    /// OpenTelemetry's ratio sampler decides).
    pub sampled: bool,
}

impl TraceContext {
    /// Continues the trace of an incoming `traceparent`, or starts a new one
    /// when there is none or it is malformed (the W3C rule: a broken header
    /// restarts the trace rather than failing the request).
    pub fn continue_or_start(traceparent: Option<&HeaderValue>) -> Self {
        match traceparent.and_then(|v| v.to_str().ok()).and_then(parse) {
            Some((trace_id, parent_id, sampled)) => Self {
                trace_id,
                parent_id: Some(parent_id),
                span_id: SpanId::random(),
                sampled,
            },
            None => {
                let trace_id = TraceId::random();
                Self {
                    trace_id,
                    parent_id: None,
                    span_id: SpanId::random(),
                    sampled: sampled_at_ratio(trace_id),
                }
            }
        }
    }

    /// The `traceparent` this service passes on: its own span as parent.
    pub fn traceparent(&self) -> String {
        String::from_utf8_lossy(&self.traceparent_bytes()).into_owned()
    }

    /// [`TraceContext::traceparent`] as a header value, written without
    /// allocating an intermediate string: it is made for every request.
    pub fn traceparent_header(&self) -> HeaderValue {
        self.traceparent_header_of(&self.hex_ids())
    }

    /// [`TraceContext::traceparent_header`] from the hex digits of this
    /// context's ids, for a caller that has them already.
    pub(crate) fn traceparent_header_of(&self, ids: &HexIds) -> HeaderValue {
        HeaderValue::from_bytes(&traceparent_bytes(&ids.0, &ids.1, self.sampled)).unwrap_or(
            HeaderValue::from_static("00-00000000000000000000000000000000-0000000000000000-00"),
        )
    }

    /// The hex digits of the trace id and of this service's span id.
    pub(crate) fn hex_ids(&self) -> HexIds {
        (self.trace_id.to_hex(), self.span_id.to_hex())
    }

    fn traceparent_bytes(&self) -> [u8; 55] {
        let (trace_id, span_id) = self.hex_ids();
        traceparent_bytes(&trace_id, &span_id, self.sampled)
    }
}

/// The caller's W3C `tracestate`: the tracing vendors' entries that ride
/// along with its `traceparent`. A service that calls another with its
/// `traceparent` passes this on unchanged, as W3C Trace Context asks.
/// [`TelemetryLayer`](crate::TelemetryLayer) puts it in a request's
/// extensions when the request continues a trace and the list is well
/// formed.
///
/// ```
/// use http::HeaderValue;
/// use opsready_telemetry::TraceState;
///
/// let state = TraceState::parse(&HeaderValue::from_static("rojo=00f067aa0ba902b7, congo=t61rcWkgMzE"));
/// assert_eq!(state.unwrap().as_str(), "rojo=00f067aa0ba902b7, congo=t61rcWkgMzE");
/// // A malformed list is dropped whole, as OpenTelemetry drops it.
/// assert!(TraceState::parse(&HeaderValue::from_static("Rojo=1")).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceState(HeaderValue);

/// The most members a `tracestate` list may have.
const TRACESTATE_MEMBERS: usize = 32;

impl TraceState {
    /// `value` when it is a `tracestate` list as W3C Trace Context writes
    /// it: up to 32 members `key=value` (empty ones between commas
    /// allowed), keys of lowercase letters, digits and `_-*/` (with one `@`
    /// for a tenant), values of up to 256 visible characters other than
    /// `,` and `=`. `None` for anything else, and for a list with no
    /// member.
    pub fn parse(value: &HeaderValue) -> Option<Self> {
        let text = value.to_str().ok()?;
        let mut members = 0;
        for member in text.split(',') {
            let member = member.trim_matches([' ', '\t']);
            if member.is_empty() {
                continue;
            }
            members += 1;
            let (key, value) = member.split_once('=')?;
            if members > TRACESTATE_MEMBERS || !is_state_key(key) || !is_state_value(value) {
                return None;
            }
        }
        (members > 0).then(|| Self(value.clone()))
    }

    /// The list, to send as the `tracestate` header.
    pub fn header(&self) -> &HeaderValue {
        &self.0
    }

    /// The list as text.
    pub fn as_str(&self) -> &str {
        // `parse` took only visible ASCII.
        self.0.to_str().unwrap_or_default()
    }
}

/// A `tracestate` key: `simple` or `tenant@system`.
fn is_state_key(key: &str) -> bool {
    let rest = |part: &str| {
        part.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
        })
    };
    match key.split_once('@') {
        None => {
            key.len() <= 256
                && key.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
                && rest(key)
        }
        Some((tenant, system)) => {
            tenant.len() <= 241
                && system.len() <= 14
                && tenant
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
                && system
                    .bytes()
                    .next()
                    .is_some_and(|b| b.is_ascii_lowercase())
                && rest(tenant)
                && rest(system)
        }
    }
}

/// A `tracestate` value: 1 to 256 printable characters other than `,` and
/// `=`, the last not a space.
fn is_state_value(value: &str) -> bool {
    !value.is_empty()
        && value.len() <= 256
        && !value.ends_with(' ')
        && value
            .bytes()
            .all(|b| (0x20..=0x7e).contains(&b) && b != b',' && b != b'=')
}

/// The bound of [`sampled_at_ratio`]: the ratio times 2^63. `1 << 63`
/// (a ratio of 1) samples every trace.
static NEW_TRACE_BOUND: AtomicU64 = AtomicU64::new(1 << 63);

/// Sets the share of new traces marked sampled in this process: [`init`]
/// sets it from `telemetry.sample_ratio`, so that the `traceparent` a new
/// trace passes on carries the same decision as the span it exports, or
/// would export (no exporter, or the span below the log level): a
/// downstream service that follows its callers' decisions then keeps
/// whole traces at that ratio rather than every one. Out-of-range ratios
/// are clamped to 0 and 1.
///
/// [`init`]: crate::init
pub(crate) fn set_sample_ratio(ratio: f64) {
    NEW_TRACE_BOUND.store(ratio_bound(ratio), Ordering::Relaxed);
}

/// Whether a new trace is sampled at the process's ratio
/// ([`set_sample_ratio`]).
pub(crate) fn sampled_at_ratio(trace_id: TraceId) -> bool {
    sampled_below(NEW_TRACE_BOUND.load(Ordering::Relaxed), trace_id)
}

/// A sample ratio as the bound [`sampled_below`] compares with: the ratio
/// times 2^63.
fn ratio_bound(ratio: f64) -> u64 {
    // NaN samples nothing; a fraction of 2^63 fits a u64.
    let ratio = if ratio.is_nan() {
        0.0
    } else {
        ratio.clamp(0.0, 1.0)
    };
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let bound = (ratio * (1u64 << 63) as f64) as u64;
    bound
}

/// OpenTelemetry's `TraceIdRatioBased` rule: the trace id's low 64 bits,
/// shifted right by one, against the bound; a ratio of 1 samples all.
/// Every service deciding by this rule and one ratio decides alike for a
/// trace id.
fn sampled_below(bound: u64, trace_id: TraceId) -> bool {
    let bytes = trace_id.0.to_be_bytes();
    let mut low = [0; 8];
    low.copy_from_slice(&bytes[8..]);
    bound >= 1 << 63 || (u64::from_be_bytes(low) >> 1) < bound
}

/// A trace id and a span id in hex.
pub(crate) type HexIds = (HexId<32>, HexId<16>);

/// `version-traceid-parentid-flags`.
fn traceparent_bytes(trace_id: &HexId<32>, span_id: &HexId<16>, sampled: bool) -> [u8; 55] {
    let mut out = *b"00-00000000000000000000000000000000-0000000000000000-00";
    out[3..35].copy_from_slice(&trace_id.0);
    out[36..52].copy_from_slice(&span_id.0);
    if sampled {
        out[54] = b'1';
    }
    out
}

/// Parses `version-traceid-parentid-flags`; versions above 00 are read by
/// their first four fields, as the specification asks.
fn parse(value: &str) -> Option<(TraceId, SpanId, bool)> {
    let parsed = Traceparent::parse(value)?;
    // Hex digits, not all zeros: the parser checked.
    let trace = u128::from_str_radix(parsed.trace_id, 16).ok()?;
    let parent = u64::from_str_radix(parsed.parent_id, 16).ok()?;
    Some((TraceId(trace), SpanId(parent), parsed.sampled))
}

/// The longest incoming request id kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether an incoming `x-request-id` can be kept: 1 to 128 visible ASCII
/// characters. Anything else (a log-injection attempt, a megabyte of text) is
/// replaced by a new id.
pub fn is_sane_request_id(value: &HeaderValue) -> bool {
    let bytes = value.as_bytes();
    !bytes.is_empty() && bytes.len() <= MAX_REQUEST_ID_LEN && bytes.iter().all(u8::is_ascii_graphic)
}

/// A new request id: a UUIDv7, so ids sort by time.
///
/// The random part comes from a fast thread-local generator rather than the
/// operating system's: it is made for every request, and a request id needs
/// to be unique, not unpredictable.
pub fn new_request_id() -> HeaderValue {
    request_id_at(std::time::SystemTime::now())
}

/// [`new_request_id`] for a request that arrived at `now`.
pub(crate) fn request_id_at(now: std::time::SystemTime) -> HeaderValue {
    let millis = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let random = fastrand::u128(..).to_le_bytes();
    let mut bytes = [0u8; 10];
    bytes.copy_from_slice(&random[..10]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &bytes).into_uuid();
    // The hyphenated form, two digits per byte from the table.
    let mut text = [b'-'; 36];
    let groups = [0..4, 4..6, 6..8, 8..10, 10..16];
    let mut at = 0;
    for group in groups {
        for byte in &id.as_bytes()[group] {
            text[at..at + 2].copy_from_slice(&HEX_PAIRS[usize::from(*byte)]);
            at += 2;
        }
        // Past the last group, `at` is 36 and this writes nothing.
        at += 1;
    }
    // One allocation that the request's header, the response's header and
    // the log fields share: a `Bytes` made from a copy of a slice would be
    // copied again by its first clone.
    HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .unwrap_or(HeaderValue::from_static("invalid-request-id"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(text: &'static str) -> Option<TraceState> {
        TraceState::parse(&HeaderValue::from_static(text))
    }

    #[test]
    fn a_tracestate_of_well_formed_members_is_kept_as_it_came() {
        for text in [
            "rojo=00f067aa0ba902b7",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            "fw529a3039@dt=FW4;0;0;0;0;0;0;ab, 7e4a@sys_1=x y",
            "a=1, ,\tb=2,",
        ] {
            assert_eq!(
                state(text).map(|s| s.as_str().to_owned()).as_deref(),
                Some(text)
            );
        }
        let longest = format!("k={}", "v".repeat(256));
        let longest = TraceState::parse(&HeaderValue::from_str(&longest).unwrap());
        assert!(longest.is_some());
    }

    #[test]
    fn a_tracestate_with_one_malformed_member_is_dropped_whole() {
        for text in [
            "",
            " , ",
            "rojo",
            "Rojo=1",
            "1abc=1",
            "rojo=",
            "rojo=a=b",
            "rojo=ok,congo",
            "tenant@Sys=1",
            "@sys=1",
            "tenant@=1",
            "rojo=caf\u{e9}",
        ] {
            let value = HeaderValue::from_bytes(text.as_bytes()).unwrap();
            assert!(TraceState::parse(&value).is_none(), "{text:?} was kept");
        }
        let too_long = format!("k={}", "v".repeat(257));
        assert!(TraceState::parse(&HeaderValue::from_str(&too_long).unwrap()).is_none());
        let members = |n: usize| {
            let list: Vec<String> = (0..n).map(|i| format!("k{i}=v")).collect();
            HeaderValue::from_str(&list.join(",")).unwrap()
        };
        assert!(TraceState::parse(&members(32)).is_some());
        assert!(TraceState::parse(&members(33)).is_none());
    }

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_ratio_rule_keeps_the_share_it_is_given() {
        for (ratio, low, high) in [(0.0, 0, 0), (0.25, 2_200, 2_800), (1.0, 10_000, 10_000)] {
            let bound = ratio_bound(ratio);
            let kept = (0..10_000)
                .filter(|_| sampled_below(bound, TraceId::random()))
                .count();
            assert!((low..=high).contains(&kept), "{ratio}: {kept} of 10,000");
        }
        assert_eq!(ratio_bound(f64::NAN), 0);
        assert_eq!(ratio_bound(7.0), 1 << 63);
        // The low half of the id decides, the high half does not.
        let low_zero = TraceId::from_u128(u128::from(u64::MAX) << 64).unwrap();
        let low_max = TraceId::from_u128(u128::from(u64::MAX)).unwrap();
        assert!(sampled_below(ratio_bound(0.001), low_zero));
        assert!(!sampled_below(ratio_bound(0.999), low_max));
    }

    /// The same decision as the SDK's sampler the exporter uses, so the
    /// flag passed on and the exported span agree.
    #[cfg(feature = "otlp")]
    #[test]
    fn the_ratio_rule_decides_as_the_opentelemetry_sampler_does() {
        use opentelemetry::trace::SpanKind;
        use opentelemetry_sdk::trace::{Sampler, SamplingDecision, ShouldSample as _};
        for ratio in [0.0, 0.1, 0.5, 0.9, 1.0] {
            let sampler = Sampler::TraceIdRatioBased(ratio);
            for _ in 0..2_000 {
                let id = TraceId::random();
                let sdk = sampler.should_sample(
                    None,
                    opentelemetry::TraceId::from(id.to_u128()),
                    "request",
                    &SpanKind::Server,
                    &[],
                    &[],
                );
                assert_eq!(
                    sampled_below(ratio_bound(ratio), id),
                    sdk.decision == SamplingDecision::RecordAndSample,
                    "{ratio} {id}"
                );
            }
        }
    }

    #[test]
    fn a_new_request_id_is_the_hyphenated_uuid_v7_of_its_time() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_795_466_647_123);
        for _ in 0..100 {
            let id = request_id_at(at);
            let text = id.to_str().unwrap();
            let parsed = uuid::Uuid::parse_str(text).unwrap();
            assert_eq!(parsed.hyphenated().to_string(), text);
            assert_eq!(parsed.get_version_num(), 7);
            let (secs, nanos) = parsed.get_timestamp().unwrap().to_unix();
            assert_eq!((secs, nanos / 1_000_000), (1_795_466_647, 123));
        }
    }

    #[test]
    fn ids_are_written_in_lower_case_hex_with_their_leading_zeros() {
        let trace = TraceId::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210).unwrap();
        assert_eq!(trace.to_string(), "0123456789abcdeffedcba9876543210");
        assert_eq!(
            TraceId::from_u128(1).unwrap().to_hex().as_str(),
            format!("{:032x}", 1)
        );
        let span = SpanId::from_u64(0x00f0_67aa_0ba9_02b7).unwrap();
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert_eq!(
            SpanId::from_u64(u64::MAX).unwrap().to_string(),
            "ffffffffffffffff"
        );
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        let context = TraceContext::continue_or_start(Some(&HeaderValue::from_static(VALID)));
        assert_eq!(
            context.trace_id.to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(context.parent_id.unwrap().to_string(), "00f067aa0ba902b7");
        assert_ne!(context.span_id.to_string(), "00f067aa0ba902b7");
        assert!(context.sampled);
        assert!(
            context
                .traceparent()
                .starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-")
        );
        assert!(context.traceparent().ends_with("-01"));
        assert_eq!(
            context.traceparent_header().to_str().unwrap(),
            context.traceparent()
        );
        assert_eq!(
            context.traceparent(),
            format!("00-{}-{}-01", context.trace_id, context.span_id)
        );
    }

    #[test]
    fn malformed_traceparents_start_a_new_trace() {
        for bad in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            let context = TraceContext::continue_or_start(Some(&HeaderValue::from_static(bad)));
            assert!(context.parent_id.is_none(), "{bad:?} was continued");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_four_fields() {
        let value = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let context = TraceContext::continue_or_start(Some(&HeaderValue::from_static(value)));
        assert!(context.parent_id.is_some());
        assert!(!context.sampled);
    }

    #[test]
    fn new_request_ids_are_uuid_v7() {
        let id = new_request_id();
        let text = id.to_str().unwrap();
        assert_eq!(text.len(), 36);
        assert_eq!(&text[14..15], "7");
    }

    #[test]
    fn short_printable_request_ids_are_kept_and_others_replaced() {
        assert!(is_sane_request_id(&HeaderValue::from_static("req-1")));
        assert!(!is_sane_request_id(&HeaderValue::from_static("")));
        assert!(!is_sane_request_id(&HeaderValue::from_static("has space")));
        let long = HeaderValue::try_from("x".repeat(MAX_REQUEST_ID_LEN + 1)).unwrap();
        assert!(!is_sane_request_id(&long));
    }
}
