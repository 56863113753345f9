//! The evaluator: definitions compiled into an immutable snapshot that
//! evaluations read without locks or allocations, and the evaluation
//! counters.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bucket::{BUCKETS, bucket, threshold};
use crate::context::{AttributeValue, EvaluationContext};
use crate::flag::{Flag, FlagType};
use crate::rule::{Condition, Operator};
use crate::store::StoredFlag;

/// The `flag` label under which evaluations of keys that name no flag are
/// counted, so that random keys add no series. Flag keys cannot start with
/// `_`, so it never collides with one.
pub const UNKNOWN_FLAG: &str = "_unknown";

/// The result of an evaluation, in the shape of OpenFeature's resolution
/// details.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Details<T> {
    /// The value served: the variant's, or the caller's default on error.
    pub value: T,
    /// The variant served; `None` when the caller's default was.
    pub variant: Option<Arc<str>>,
    /// Why this value was served.
    pub reason: Reason,
    /// What went wrong, when `reason` is [`Reason::Error`].
    pub error: Option<ErrorCode>,
    /// The stored version of the flag's definition that was evaluated;
    /// `None` for a key no flag has. A trace or log of an evaluation can
    /// name the definition that served it.
    pub version: Option<u64>,
}

/// Why an evaluation served what it served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum Reason {
    /// The flag has no rules and no rollout: its default variant.
    Static,
    /// Rules or a rollout exist, but none chose: the default variant.
    Default,
    /// A targeting rule matched.
    TargetingMatch,
    /// The rollout's percentage bucket chose the variant.
    Split,
    /// The flag is disabled (killed): its default variant.
    Disabled,
    /// Evaluation failed: the caller's default; see [`ErrorCode`].
    Error,
}

impl Reason {
    /// The OpenFeature name: `STATIC`, `DEFAULT`, `TARGETING_MATCH`,
    /// `SPLIT`, `DISABLED` or `ERROR`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Static => "STATIC",
            Self::Default => "DEFAULT",
            Self::TargetingMatch => "TARGETING_MATCH",
            Self::Split => "SPLIT",
            Self::Disabled => "DISABLED",
            Self::Error => "ERROR",
        }
    }

    /// The reasons that serve a variant, in counter-slot order.
    const SERVED: [Self; 5] = [
        Self::Static,
        Self::Default,
        Self::TargetingMatch,
        Self::Split,
        Self::Disabled,
    ];

    fn slot(self) -> usize {
        match self {
            Self::Static => 0,
            Self::Default => 1,
            Self::TargetingMatch => 2,
            Self::Split => 3,
            // Errors never reach a variant's counters; the slot is unused.
            Self::Disabled | Self::Error => 4,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong in an evaluation that served the caller's default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum ErrorCode {
    /// No flag has this key.
    FlagNotFound,
    /// The flag's type is not the type asked for.
    TypeMismatch,
    /// A percentage or rollout needed a targeting key, and the context has
    /// none.
    TargetingKeyMissing,
    /// The stored definition cannot be evaluated (an operator this version
    /// does not know, a variant that does not exist).
    ParseError,
    /// Anything else.
    General,
}

impl ErrorCode {
    /// The OpenFeature name, e.g. `FLAG_NOT_FOUND`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FlagNotFound => "FLAG_NOT_FOUND",
            Self::TypeMismatch => "TYPE_MISMATCH",
            Self::TargetingKeyMissing => "TARGETING_KEY_MISSING",
            Self::ParseError => "PARSE_ERROR",
            Self::General => "GENERAL",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The number of evaluations of one (flag, variant, reason), since the
/// [`Flags`](crate::Flags) handle was created.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EvaluationCount {
    /// The flag's key, or [`UNKNOWN_FLAG`].
    pub flag: Arc<str>,
    /// The variant served; `None` when the caller's default was (reason
    /// [`Reason::Error`]).
    pub variant: Option<Arc<str>>,
    /// Why.
    pub reason: Reason,
    /// How many evaluations; only ever grows.
    pub count: u64,
}

type CounterKey = (Arc<str>, Option<Arc<str>>, Reason);

/// Every evaluation counter ever handed to a snapshot, so that a new
/// snapshot of the same flag keeps counting where the old one stopped.
///
/// The lock is taken while compiling and reading the counts, never while
/// evaluating: snapshots hold their counters directly.
#[derive(Default)]
pub(crate) struct Counters {
    by_key: Mutex<HashMap<CounterKey, Arc<AtomicU64>>>,
}

impl Counters {
    fn counter(
        &self,
        flag: &Arc<str>,
        variant: Option<&Arc<str>>,
        reason: Reason,
    ) -> Arc<AtomicU64> {
        let mut map = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (Arc::clone(flag), variant.cloned(), reason);
        Arc::clone(map.entry(key).or_default())
    }

    /// Counts above zero, sorted by flag, variant and reason.
    pub(crate) fn counts(&self) -> Vec<EvaluationCount> {
        let map = self.by_key.lock().unwrap_or_else(PoisonError::into_inner);
        let mut counts: Vec<EvaluationCount> = map
            .iter()
            .filter_map(|((flag, variant, reason), counter)| {
                let count = counter.load(Ordering::Relaxed);
                (count > 0).then(|| EvaluationCount {
                    flag: Arc::clone(flag),
                    variant: variant.clone(),
                    reason: *reason,
                    count,
                })
            })
            .collect();
        drop(map);
        counts
            .sort_by(|a, b| (&a.flag, &a.variant, a.reason).cmp(&(&b.flag, &b.variant, b.reason)));
        counts
    }
}

/// Every flag, compiled, as of one moment. Immutable: a change builds a new
/// snapshot and swaps it in.
pub(crate) struct Snapshot {
    flags: HashMap<Arc<str>, Arc<Compiled>, BuildHasherDefault<KeyHasher>>,
    unknown: Arc<AtomicU64>,
}

impl Snapshot {
    pub(crate) fn empty(counters: &Counters) -> Self {
        Self {
            flags: HashMap::default(),
            unknown: counters.counter(&Arc::from(UNKNOWN_FLAG), None, Reason::Error),
        }
    }

    /// A snapshot of `stored`, reusing this snapshot's compiled flags
    /// where the version and definition are unchanged.
    pub(crate) fn rebuild(&self, stored: Vec<StoredFlag>, counters: &Counters) -> Self {
        let flags = stored
            .into_iter()
            .map(|stored| match self.flags.get(stored.flag.key.as_str()) {
                Some(same) if same.stored == stored => (Arc::clone(&same.key), Arc::clone(same)),
                _ => {
                    let compiled = Compiled::new(stored, counters);
                    (Arc::clone(&compiled.key), Arc::new(compiled))
                }
            })
            .collect();
        Self {
            flags,
            unknown: Arc::clone(&self.unknown),
        }
    }

    /// This snapshot with one flag set to `stored`, or removed when
    /// `stored` is `None`. A version older than the one held is ignored:
    /// the snapshot never goes back.
    pub(crate) fn with(
        &self,
        key: &str,
        stored: Option<StoredFlag>,
        version: u64,
        counters: &Counters,
    ) -> Self {
        let mut flags = self.flags.clone();
        if flags
            .get(key)
            .is_some_and(|held| held.stored.version > version)
        {
            return Self {
                flags,
                unknown: Arc::clone(&self.unknown),
            };
        }
        match stored {
            Some(stored) => {
                let compiled = Compiled::new(stored, counters);
                flags.insert(Arc::clone(&compiled.key), Arc::new(compiled));
            }
            None => {
                flags.remove(key);
            }
        }
        Self {
            flags,
            unknown: Arc::clone(&self.unknown),
        }
    }

    pub(crate) fn get(&self, key: &str) -> Option<&StoredFlag> {
        self.flags.get(key).map(|compiled| &compiled.stored)
    }

    pub(crate) fn stored(&self) -> impl Iterator<Item = &StoredFlag> {
        self.flags.values().map(|compiled| &compiled.stored)
    }

    pub(crate) fn len(&self) -> usize {
        self.flags.len()
    }

    /// Evaluates `key` for `ctx` as a flag of type `wanted`, takes the
    /// served variant's value with `read` (`None`: the value is not one the
    /// caller can use, a type mismatch), counts the outcome and hands it to
    /// `finish`. A value `read` refuses counts as an error, not as served:
    /// the caller falls back to its default. Takes no lock and allocates
    /// nothing but what `read` does.
    pub(crate) fn evaluate<T, R>(
        &self,
        key: &str,
        ctx: &EvaluationContext,
        wanted: FlagType,
        read: impl FnOnce(&VariantValue) -> Option<T>,
        finish: impl FnOnce(Option<u64>, Result<(T, &Arc<str>, Reason), ErrorCode>) -> R,
    ) -> R {
        let Some(compiled) = self.flags.get(key) else {
            self.unknown.fetch_add(1, Ordering::Relaxed);
            return finish(None, Err(ErrorCode::FlagNotFound));
        };
        let outcome = match &compiled.program {
            None => Err(ErrorCode::ParseError),
            Some(program) if program.flag_type != wanted => Err(ErrorCode::TypeMismatch),
            Some(program) => program.resolve(&compiled.key, ctx),
        };
        let outcome = outcome.and_then(|(variant, reason)| match read(&variant.value) {
            Some(value) => {
                variant.counters[reason.slot()].fetch_add(1, Ordering::Relaxed);
                Ok((value, &variant.name, reason))
            }
            None => Err(ErrorCode::TypeMismatch),
        });
        if outcome.is_err() {
            compiled.errors.fetch_add(1, Ordering::Relaxed);
        }
        finish(Some(compiled.stored.version), outcome)
    }
}

/// The hasher of the snapshot's map of keys: a folded multiply (the full
/// 128-bit product's halves xored, so every input bit reaches every output
/// bit) over eight bytes at a time, several times faster than the default
/// SipHash on short keys. SipHash's protection against chosen collisions is not
/// needed: the map is only ever filled with the store's keys, and a
/// lookup of any other key only misses.
#[derive(Default, Clone, Copy)]
pub(crate) struct KeyHasher(u64);

impl KeyHasher {
    fn add(&mut self, word: u64) {
        let product = u128::from(self.0 ^ word ^ 0x243f_6a88_85a3_08d3) * 0x9e37_79b9_7f4a_7c15;
        // Keeping only the low half would let a difference in a word's top
        // bits cancel against the next word's low bits.
        #[allow(clippy::cast_possible_truncation)]
        let folded = (product as u64) ^ ((product >> 64) as u64);
        self.0 = folded;
    }
}

impl Hasher for KeyHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes([
                w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7],
            ]));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            // The length tells `a` from `a\0`, which pad to the same bytes.
            last[7] = u8::try_from(rest.len()).unwrap_or(0);
            self.add(u64::from_le_bytes(last));
        }
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// One flag, compiled for evaluation.
struct Compiled {
    key: Arc<str>,
    stored: StoredFlag,
    /// `None` when the definition cannot be evaluated: such a flag serves
    /// the caller's default with `PARSE_ERROR` instead of failing the
    /// whole snapshot.
    program: Option<Program>,
    errors: Arc<AtomicU64>,
}

impl Compiled {
    fn new(stored: StoredFlag, counters: &Counters) -> Self {
        let key: Arc<str> = Arc::from(stored.flag.key.as_str());
        let program = Program::compile(&key, &stored.flag, counters);
        let errors = counters.counter(&key, None, Reason::Error);
        Self {
            key,
            stored,
            program,
            errors,
        }
    }
}

struct Program {
    flag_type: FlagType,
    enabled: bool,
    variants: Box<[Variant]>,
    default: usize,
    rules: Box<[CompiledRule]>,
    /// The rollout's variant and bucket threshold.
    rollout: Option<(usize, u32)>,
    /// The distinct attribute names the rules test; conditions refer to
    /// them by position, so that each is looked up at most once per
    /// evaluation however many conditions test it.
    attributes: Box<[Box<str>]>,
}

/// A variant, ready to serve.
pub(crate) struct Variant {
    pub(crate) name: Arc<str>,
    pub(crate) value: VariantValue,
    /// One counter per reason in [`Reason::SERVED`].
    counters: [Arc<AtomicU64>; 5],
}

/// A variant's value in the form each typed getter serves without
/// converting.
pub(crate) enum VariantValue {
    Bool(bool),
    String(Arc<str>),
    Number(f64),
    Json(Value),
}

struct CompiledRule {
    tests: Box<[Test]>,
    variant: usize,
}

enum Test {
    /// A test of an attribute (or of the targeting key).
    Attribute { source: Source, check: Check },
    /// The targeting key's bucket is below the threshold.
    Percentage(u32),
}

enum Source {
    TargetingKey,
    /// A position in [`Program::attributes`].
    Attribute(usize),
}

enum Check {
    Equals(Scalar),
    NotEquals(Scalar),
    OneOf(Box<[Scalar]>),
    NotOneOf(Box<[Scalar]>),
    Number(NumberOp, f64),
    Semver(SemverOp, semver::Version),
}

#[derive(Clone, Copy)]
enum NumberOp {
    Lt,
    Lte,
    Gt,
    Gte,
}

#[derive(Clone, Copy)]
enum SemverOp {
    Eq,
    Lt,
    Lte,
    Gt,
    Gte,
}

enum Scalar {
    /// Text, with its [`text_hash`]: most comparisons of text with text
    /// differ, and comparing hashes tells so without reading the bytes.
    String(Box<str>, u64),
    Number(f64),
    Bool(bool),
}

impl Scalar {
    fn from_json(value: &Value) -> Option<Self> {
        match value {
            Value::String(s) => Some(Self::String(s.as_str().into(), text_hash(s))),
            Value::Number(n) => n.as_f64().map(Self::Number),
            Value::Bool(b) => Some(Self::Bool(*b)),
            _ => None,
        }
    }

    /// Whether `value` has this operand's type, whatever its value.
    fn same_type(&self, value: Attr<'_>) -> bool {
        matches!(
            (self, value),
            (Self::String(..), Attr::String(..))
                | (Self::Number(_), Attr::Number(_))
                | (Self::Bool(_), Attr::Bool(_))
        )
    }

    fn matches(&self, value: Attr<'_>) -> bool {
        match (self, value) {
            (Self::String(a, a_hash), Attr::String(b, b_hash)) => *a_hash == b_hash && **a == *b,
            (Self::Number(a), Attr::Number(b)) => *a == b,
            (Self::Bool(a), Attr::Bool(b)) => *a == b,
            _ => false,
        }
    }
}

/// The hash of a text operand or attribute, computed once per operand at
/// compile time and once per attribute per evaluation.
fn text_hash(text: &str) -> u64 {
    let mut hasher = KeyHasher::default();
    hasher.write(text.as_bytes());
    hasher.finish()
}

/// An attribute's value as read from the context, borrowed.
#[derive(Clone, Copy)]
enum Attr<'a> {
    /// Text and its [`text_hash`].
    String(&'a str, u64),
    Number(f64),
    Bool(bool),
}

impl Program {
    fn compile(key: &Arc<str>, flag: &Flag, counters: &Counters) -> Option<Self> {
        let mut variants = Vec::with_capacity(flag.variants.len());
        for (name, value) in &flag.variants {
            let value = match (flag.flag_type, value) {
                (FlagType::Bool, Value::Bool(b)) => VariantValue::Bool(*b),
                (FlagType::String, Value::String(s)) => VariantValue::String(Arc::from(s.as_str())),
                (FlagType::Number, Value::Number(n)) => VariantValue::Number(n.as_f64()?),
                (FlagType::Json, value) => VariantValue::Json(value.clone()),
                _ => return None,
            };
            let name: Arc<str> = Arc::from(name.as_str());
            let counters = Reason::SERVED.map(|reason| counters.counter(key, Some(&name), reason));
            variants.push(Variant {
                name,
                value,
                counters,
            });
        }
        // Variants are a BTreeMap, so positions follow the sorted names.
        let index = |name: &str| flag.variants.keys().position(|n| n == name);
        let default = index(&flag.default_variant)?;
        let mut attributes = Vec::new();
        let rules = flag
            .rules
            .iter()
            .map(|rule| {
                Some(CompiledRule {
                    tests: rule
                        .conditions
                        .iter()
                        .map(|condition| compile_condition(condition, &mut attributes))
                        .collect::<Option<_>>()?,
                    variant: index(&rule.variant)?,
                })
            })
            .collect::<Option<Box<[_]>>>();
        let rollout = match &flag.rollout {
            Some(rollout) => index(&rollout.variant)
                .map(|variant| Some((variant, threshold(rollout.percentage)))),
            None => Some(None),
        };
        let (rules, rollout) = match (rules, rollout) {
            (Some(rules), Some(rollout)) => (rules, rollout),
            // A disabled flag serves its default variant whatever its rules
            // say, so rules this version cannot read (a newer release's
            // operator) do not stop a kill switch.
            _ if !flag.enabled => (Box::default(), None),
            _ => return None,
        };
        Some(Self {
            flag_type: flag.flag_type,
            enabled: flag.enabled,
            variants: variants.into_boxed_slice(),
            default,
            rules,
            rollout,
            attributes: attributes.into_boxed_slice(),
        })
    }

    fn resolve<'p>(
        &'p self,
        key: &str,
        ctx: &EvaluationContext,
    ) -> Result<(&'p Variant, Reason), ErrorCode> {
        let variant = |index: usize| self.variants.get(index).ok_or(ErrorCode::General);
        if !self.enabled {
            return Ok((variant(self.default)?, Reason::Disabled));
        }
        let mut scope = Scope::new(key, ctx, &self.attributes);
        for rule in &self.rules {
            if scope.holds(rule)? {
                return Ok((variant(rule.variant)?, Reason::TargetingMatch));
            }
        }
        if let Some((rollout, threshold)) = self.rollout {
            if scope.in_percentage(threshold)? {
                return Ok((variant(rollout)?, Reason::Split));
            }
            return Ok((variant(self.default)?, Reason::Default));
        }
        let reason = if self.rules.is_empty() {
            Reason::Static
        } else {
            Reason::Default
        };
        Ok((variant(self.default)?, reason))
    }
}

/// How many distinct attributes of a flag are remembered during one
/// evaluation; further ones are looked up each time they are tested.
const REMEMBERED: usize = 8;

/// What one evaluation has looked up so far: attributes and the bucket are
/// read at most once, and only if a condition needs them. Lives on the
/// stack.
struct Scope<'p, 'c> {
    key: &'p str,
    ctx: &'c EvaluationContext,
    names: &'p [Box<str>],
    remembered: [Option<Option<Attr<'c>>>; REMEMBERED],
    targeting_key: Option<Option<Attr<'c>>>,
    bucket: Option<u32>,
}

impl<'p, 'c> Scope<'p, 'c> {
    fn new(key: &'p str, ctx: &'c EvaluationContext, names: &'p [Box<str>]) -> Self {
        Self {
            key,
            ctx,
            names,
            remembered: [None; REMEMBERED],
            targeting_key: None,
            bucket: None,
        }
    }

    fn holds(&mut self, rule: &CompiledRule) -> Result<bool, ErrorCode> {
        for test in &rule.tests {
            let holds = match test {
                // Without a targeting key a percentage condition does not
                // hold, as a condition on an attribute the context lacks:
                // the later rules still get their turn (the rollout, which
                // has no other way to answer, is an error instead).
                Test::Percentage(threshold) => self.in_percentage(*threshold).unwrap_or(false),
                Test::Attribute { source, check } => self
                    .attribute(source)
                    .is_some_and(|value| check.holds(value)),
            };
            if !holds {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Whether the targeting key is within `threshold`. 0% and 100% need
    /// no key: nobody and everybody are in them whoever asks.
    fn in_percentage(&mut self, threshold: u32) -> Result<bool, ErrorCode> {
        if threshold == 0 {
            return Ok(false);
        }
        if threshold >= BUCKETS {
            return Ok(true);
        }
        let bucket = match self.bucket {
            Some(bucket) => bucket,
            None => {
                // An empty key would put every anonymous caller in one
                // bucket: all of them in, or all out.
                let targeting_key = self
                    .ctx
                    .get_targeting_key()
                    .filter(|key| !key.is_empty())
                    .ok_or(ErrorCode::TargetingKeyMissing)?;
                let computed = bucket(self.key, targeting_key);
                self.bucket = Some(computed);
                computed
            }
        };
        Ok(bucket < threshold)
    }

    fn attribute(&mut self, source: &Source) -> Option<Attr<'c>> {
        let index = match source {
            Source::TargetingKey => {
                let ctx = self.ctx;
                return *self.targeting_key.get_or_insert_with(|| {
                    // An empty key counts as none, as for percentages: a
                    // caller's `unwrap_or_default()` is not a user.
                    ctx.get_targeting_key()
                        .filter(|key| !key.is_empty())
                        .map(|key| Attr::String(key, text_hash(key)))
                });
            }
            Source::Attribute(index) => *index,
        };
        if let Some(Some(known)) = self.remembered.get(index) {
            return *known;
        }
        let name = self.names.get(index)?;
        let value = match self.ctx.get(name) {
            Some(AttributeValue::String(s)) => Some(Attr::String(s, text_hash(s))),
            Some(AttributeValue::Number(n)) => Some(Attr::Number(*n)),
            Some(AttributeValue::Bool(b)) => Some(Attr::Bool(*b)),
            None => None,
        };
        if let Some(slot) = self.remembered.get_mut(index) {
            *slot = Some(value);
        }
        value
    }
}

impl Check {
    fn holds(&self, value: Attr<'_>) -> bool {
        match self {
            Self::Equals(scalar) => scalar.matches(value),
            // An attribute of another type holds no condition, negated
            // ones included: a plan id sent as a number is not "not free".
            Self::NotEquals(scalar) => scalar.same_type(value) && !scalar.matches(value),
            Self::OneOf(list) => list.iter().any(|scalar| scalar.matches(value)),
            Self::NotOneOf(list) => {
                list.iter().any(|scalar| scalar.same_type(value))
                    && !list.iter().any(|scalar| scalar.matches(value))
            }
            Self::Number(op, operand) => match value {
                Attr::Number(n) => match op {
                    NumberOp::Lt => n < *operand,
                    NumberOp::Lte => n <= *operand,
                    NumberOp::Gt => n > *operand,
                    NumberOp::Gte => n >= *operand,
                },
                _ => false,
            },
            Self::Semver(op, operand) => match value {
                // An attribute that is not a version does not hold, rather
                // than failing the evaluation: it is the caller's data.
                // By precedence: build metadata (`2.4.1+42`) is ignored
                // (SemVer 2.0.0, 10), pre-releases come first.
                Attr::String(text, _) => semver::Version::parse(text).is_ok_and(|version| {
                    let order = version.cmp_precedence(operand);
                    match op {
                        SemverOp::Eq => order.is_eq(),
                        SemverOp::Lt => order.is_lt(),
                        SemverOp::Lte => order.is_le(),
                        SemverOp::Gt => order.is_gt(),
                        SemverOp::Gte => order.is_ge(),
                    }
                }),
                _ => false,
            },
        }
    }
}

fn compile_condition(condition: &Condition, attributes: &mut Vec<Box<str>>) -> Option<Test> {
    let value = &condition.value;
    if condition.op == Operator::Percentage {
        let percentage = value.as_f64()?;
        return Some(Test::Percentage(threshold(percentage)));
    }
    let source = match condition.attribute.as_deref()? {
        "" => return None,
        "targeting_key" => Source::TargetingKey,
        name => match attributes.iter().position(|known| **known == *name) {
            Some(index) => Source::Attribute(index),
            None => {
                attributes.push(name.into());
                Source::Attribute(attributes.len() - 1)
            }
        },
    };
    let list =
        || -> Option<Box<[Scalar]>> { value.as_array()?.iter().map(Scalar::from_json).collect() };
    let number = |op| Some(Check::Number(op, value.as_f64()?));
    let version = |op| {
        Some(Check::Semver(
            op,
            semver::Version::parse(value.as_str()?).ok()?,
        ))
    };
    let check = match condition.op {
        Operator::Equals => Check::Equals(Scalar::from_json(value)?),
        Operator::NotEquals => Check::NotEquals(Scalar::from_json(value)?),
        Operator::OneOf => Check::OneOf(list()?),
        Operator::NotOneOf => Check::NotOneOf(list()?),
        Operator::Lt => number(NumberOp::Lt)?,
        Operator::Lte => number(NumberOp::Lte)?,
        Operator::Gt => number(NumberOp::Gt)?,
        Operator::Gte => number(NumberOp::Gte)?,
        Operator::SemverEq => version(SemverOp::Eq)?,
        Operator::SemverLt => version(SemverOp::Lt)?,
        Operator::SemverLte => version(SemverOp::Lte)?,
        Operator::SemverGt => version(SemverOp::Gt)?,
        Operator::SemverGte => version(SemverOp::Gte)?,
        Operator::Percentage | Operator::Other(_) => return None,
    };
    Some(Test::Attribute { source, check })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::flag::Rollout;
    use crate::rule::Rule;

    fn snapshot(flags: Vec<Flag>) -> (Snapshot, Counters) {
        let counters = Counters::default();
        let stored = flags
            .into_iter()
            .map(|flag| StoredFlag::new(flag, 1))
            .collect();
        let snapshot = Snapshot::empty(&counters).rebuild(stored, &counters);
        (snapshot, counters)
    }

    fn outcome(
        snapshot: &Snapshot,
        key: &str,
        ctx: &EvaluationContext,
    ) -> Result<(String, Reason), ErrorCode> {
        snapshot.evaluate(
            key,
            ctx,
            FlagType::Bool,
            |_| Some(()),
            |_, outcome| outcome.map(|((), name, reason)| (name.to_string(), reason)),
        )
    }

    fn ok(variant: &str, reason: Reason) -> Result<(String, Reason), ErrorCode> {
        Ok((variant.to_owned(), reason))
    }

    #[test]
    fn a_flag_without_rules_serves_its_default_statically() {
        let (snap, _) = snapshot(vec![Flag::boolean("a")]);
        assert_eq!(
            outcome(&snap, "a", &EvaluationContext::new()),
            ok("off", Reason::Static)
        );
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let flag = Flag::boolean("a")
            .variant("maybe", true)
            .rule(Rule::new("maybe").when(Condition::equals("plan", "team")))
            .rule(Rule::new("on").when(Condition::one_of("plan", ["pro", "team"])));
        let (snap, _) = snapshot(vec![flag]);
        let ctx = |plan: &str| EvaluationContext::new().attribute("plan", plan.to_owned());
        assert_eq!(
            outcome(&snap, "a", &ctx("team")),
            ok("maybe", Reason::TargetingMatch)
        );
        assert_eq!(
            outcome(&snap, "a", &ctx("pro")),
            ok("on", Reason::TargetingMatch)
        );
        assert_eq!(
            outcome(&snap, "a", &ctx("free")),
            ok("off", Reason::Default)
        );
    }

    #[test]
    fn every_condition_of_a_rule_must_hold() {
        let flag = Flag::boolean("a").rule(
            Rule::new("on")
                .when(Condition::equals("plan", "pro"))
                .when(Condition::gte("seats", 10.0)),
        );
        let (snap, _) = snapshot(vec![flag]);
        let pro = EvaluationContext::new().attribute("plan", "pro");
        assert_eq!(
            outcome(&snap, "a", &pro.clone().attribute("seats", 10)),
            ok("on", Reason::TargetingMatch)
        );
        assert_eq!(
            outcome(&snap, "a", &pro.attribute("seats", 9)),
            ok("off", Reason::Default)
        );
    }

    #[test]
    fn disabling_serves_the_default_over_every_rule() {
        let flag = Flag::boolean("a")
            .rule(Rule::new("on"))
            .rollout(Rollout::new("on", 100.0))
            .enabled(false);
        let (snap, _) = snapshot(vec![flag]);
        assert_eq!(
            outcome(&snap, "a", &EvaluationContext::new()),
            ok("off", Reason::Disabled)
        );
    }

    #[test]
    fn a_missing_or_differently_typed_attribute_never_holds() {
        let flag = Flag::boolean("a")
            .rule(Rule::new("on").when(Condition::not_equals("plan", "free")))
            .rule(Rule::new("on").when(Condition::lt("age", 18.0)));
        let (snap, _) = snapshot(vec![flag]);
        assert_eq!(
            outcome(&snap, "a", &EvaluationContext::new()),
            ok("off", Reason::Default)
        );
        let typed = EvaluationContext::new().attribute("age", "17");
        assert_eq!(outcome(&snap, "a", &typed), ok("off", Reason::Default));
        // Negated conditions too: a plan sent as a number is not "not free".
        let numeric_plan = EvaluationContext::new().attribute("plan", 0);
        assert_eq!(
            outcome(&snap, "a", &numeric_plan),
            ok("off", Reason::Default)
        );
        let listed = Flag::boolean("b")
            .rule(Rule::new("on").when(Condition::not_one_of("plan", ["free", "trial"])));
        let (snap, _) = snapshot(vec![listed]);
        assert_eq!(
            outcome(&snap, "b", &numeric_plan),
            ok("off", Reason::Default)
        );
        let pro = EvaluationContext::new().attribute("plan", "pro");
        assert_eq!(outcome(&snap, "b", &pro), ok("on", Reason::TargetingMatch));
    }

    #[test]
    fn semantic_versions_compare_as_versions_not_text() {
        let flag = Flag::boolean("a").rule(Rule::new("on").when(Condition::semver(
            "app",
            Operator::SemverGte,
            "1.10.0",
        )));
        let (snap, _) = snapshot(vec![flag]);
        let app = |v: &str| EvaluationContext::new().attribute("app", v.to_owned());
        assert_eq!(
            outcome(&snap, "a", &app("1.10.0")),
            ok("on", Reason::TargetingMatch)
        );
        assert_eq!(
            outcome(&snap, "a", &app("1.9.9")),
            ok("off", Reason::Default)
        );
        assert_eq!(
            outcome(&snap, "a", &app("1.10.0-rc.1")),
            ok("off", Reason::Default)
        );
        assert_eq!(
            outcome(&snap, "a", &app("not a version")),
            ok("off", Reason::Default)
        );
    }

    #[test]
    fn build_metadata_does_not_count_in_version_comparisons() {
        // SemVer 2.0.0, 10: `2.4.1+42` is 2.4.1, as mobile apps report it.
        let rule = |op, operand: &str| {
            Flag::boolean("a").rule(Rule::new("on").when(Condition::semver("app", op, operand)))
        };
        let app = |v: &str| EvaluationContext::new().attribute("app", v.to_owned());
        for (op, operand, version, holds) in [
            (Operator::SemverGt, "2.4.1", "2.4.1+42", false),
            (Operator::SemverEq, "2.4.1", "2.4.1+42", true),
            (Operator::SemverLte, "2.4.1", "2.4.1+42", true),
            (Operator::SemverEq, "2.4.1+7", "2.4.1", true),
            (Operator::SemverLt, "2.4.1+7", "2.4.1+42", false),
            (Operator::SemverGte, "2.4.2", "2.4.1+99", false),
        ] {
            let (snap, _) = snapshot(vec![rule(op.clone(), operand)]);
            let expected = if holds {
                ok("on", Reason::TargetingMatch)
            } else {
                ok("off", Reason::Default)
            };
            assert_eq!(
                outcome(&snap, "a", &app(version)),
                expected,
                "{version} {op:?} {operand}"
            );
        }
    }

    #[test]
    fn the_targeting_key_can_be_tested_like_an_attribute() {
        let flag = Flag::boolean("a")
            .rule(Rule::new("on").when(Condition::one_of("targeting_key", ["qa-1"])));
        let (snap, _) = snapshot(vec![flag]);
        let ctx = EvaluationContext::new().targeting_key("qa-1");
        assert_eq!(outcome(&snap, "a", &ctx), ok("on", Reason::TargetingMatch));
    }

    #[test]
    fn an_empty_targeting_key_holds_no_condition_on_it() {
        // As for percentages: an empty key is no key, so a caller with none
        // is not "everyone but qa-1".
        let flag = Flag::boolean("a")
            .rule(Rule::new("on").when(Condition::not_one_of("targeting_key", ["qa-1"])));
        let (snap, _) = snapshot(vec![flag]);
        let empty = EvaluationContext::new().targeting_key("");
        assert_eq!(outcome(&snap, "a", &empty), ok("off", Reason::Default));
        let other = EvaluationContext::new().targeting_key("user-7");
        assert_eq!(
            outcome(&snap, "a", &other),
            ok("on", Reason::TargetingMatch)
        );
    }

    #[test]
    fn a_rollout_splits_by_bucket_and_otherwise_serves_the_default() {
        let flag = Flag::boolean("a").rollout(Rollout::new("on", 50.0));
        let (snap, _) = snapshot(vec![flag]);
        let (mut on, mut off) = (0, 0);
        for i in 0..1000 {
            let ctx = EvaluationContext::new().targeting_key(format!("user-{i}"));
            let expected_on = bucket("a", &format!("user-{i}")) < 5000;
            match outcome(&snap, "a", &ctx) {
                Ok((variant, Reason::Split)) if variant == "on" && expected_on => on += 1,
                Ok((variant, Reason::Default)) if variant == "off" && !expected_on => off += 1,
                other => panic!("user-{i}: {other:?}"),
            }
        }
        assert!(on > 400 && off > 400, "on {on}, off {off}");
    }

    #[test]
    fn a_rollout_without_a_targeting_key_is_an_error() {
        let (snap, _) = snapshot(vec![Flag::boolean("a").rollout(Rollout::new("on", 10.0))]);
        assert_eq!(
            outcome(&snap, "a", &EvaluationContext::new()),
            Err(ErrorCode::TargetingKeyMissing)
        );
        // An empty key is no key: it would bucket every caller alike.
        assert_eq!(
            outcome(&snap, "a", &EvaluationContext::new().targeting_key("")),
            Err(ErrorCode::TargetingKeyMissing)
        );
    }

    #[test]
    fn a_percentage_condition_without_a_targeting_key_does_not_hold_and_later_rules_run() {
        let (snap, _) = snapshot(vec![
            Flag::boolean("a")
                .rule(Rule::new("on").when(Condition::percentage(10.0)))
                .rule(Rule::new("on").when(Condition::equals("plan", "staff"))),
        ]);
        let staff = EvaluationContext::new().attribute("plan", "staff");
        let guest = EvaluationContext::new().attribute("plan", "guest");

        assert!(matches!(
            outcome(&snap, "a", &staff),
            Ok((variant, Reason::TargetingMatch)) if variant == "on"
        ));
        assert!(matches!(
            outcome(&snap, "a", &guest),
            Ok((variant, Reason::Default)) if variant == "off"
        ));
    }

    #[test]
    fn zero_and_a_hundred_percent_need_no_targeting_key() {
        let (snap, _) = snapshot(vec![
            Flag::boolean("none").rollout(Rollout::new("on", 0.0)),
            Flag::boolean("all").rollout(Rollout::new("on", 100.0)),
        ]);
        let ctx = EvaluationContext::new();
        assert_eq!(outcome(&snap, "none", &ctx), ok("off", Reason::Default));
        assert_eq!(outcome(&snap, "all", &ctx), ok("on", Reason::Split));
    }

    #[test]
    fn a_percentage_condition_uses_the_same_bucket_as_the_rollout() {
        let flag = Flag::boolean("a").rule(Rule::new("on").when(Condition::percentage(30.0)));
        let (snap, _) = snapshot(vec![flag]);
        for i in 0..200 {
            let key = format!("u{i}");
            let expected = if bucket("a", &key) < 3000 {
                ok("on", Reason::TargetingMatch)
            } else {
                ok("off", Reason::Default)
            };
            assert_eq!(
                outcome(&snap, "a", &EvaluationContext::new().targeting_key(key)),
                expected
            );
        }
    }

    #[test]
    fn asking_for_another_type_is_a_type_mismatch() {
        let (snap, _) = snapshot(vec![Flag::boolean("a")]);
        let result = snap.evaluate(
            "a",
            &EvaluationContext::new(),
            FlagType::String,
            |_| Some(()),
            |_, o| o.map(|_| ()),
        );
        assert_eq!(result, Err(ErrorCode::TypeMismatch));
    }

    #[test]
    fn a_definition_that_cannot_compile_is_a_parse_error_for_that_flag_only() {
        let mut broken = Flag::boolean("broken").rule(Rule::new("on").when(Condition::new(
            Some("ip".into()),
            Operator::Other("in_cidr".into()),
            json!("10.0.0.0/8"),
        )));
        broken.rules.push(Rule::new("on"));
        let (snap, _) = snapshot(vec![broken, Flag::boolean("fine")]);
        let ctx = EvaluationContext::new();
        assert_eq!(outcome(&snap, "broken", &ctx), Err(ErrorCode::ParseError));
        assert_eq!(outcome(&snap, "fine", &ctx), ok("off", Reason::Static));
    }

    #[test]
    fn evaluations_are_counted_by_flag_variant_and_reason() {
        let (snap, counters) = snapshot(vec![
            Flag::boolean("a").rule(Rule::new("on").when(Condition::equals("x", 1))),
        ]);
        let hit = EvaluationContext::new().attribute("x", 1);
        let miss = EvaluationContext::new();
        for ctx in [&hit, &hit, &miss] {
            let _ = outcome(&snap, "a", ctx);
        }
        let _ = outcome(&snap, "random-1", &miss);
        let _ = outcome(&snap, "random-2", &miss);
        let counts: Vec<(String, Option<String>, Reason, u64)> = counters
            .counts()
            .into_iter()
            .map(|c| {
                (
                    c.flag.to_string(),
                    c.variant.map(|v| v.to_string()),
                    c.reason,
                    c.count,
                )
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("_unknown".to_owned(), None, Reason::Error, 2),
                ("a".to_owned(), Some("off".to_owned()), Reason::Default, 1),
                (
                    "a".to_owned(),
                    Some("on".to_owned()),
                    Reason::TargetingMatch,
                    2
                ),
            ]
        );
    }

    #[test]
    fn counters_survive_a_new_snapshot_of_the_same_flag() {
        let (snap, counters) = snapshot(vec![Flag::boolean("a")]);
        let _ = outcome(&snap, "a", &EvaluationContext::new());
        let changed = StoredFlag::new(Flag::boolean("a").description("changed"), 2);
        let next = snap.with("a", Some(changed), 2, &counters);
        let _ = outcome(&next, "a", &EvaluationContext::new());
        let counts = counters.counts();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].count, 2);
    }

    #[test]
    fn more_attributes_than_are_remembered_are_still_each_tested() {
        let flag = (0..12).fold(Flag::boolean("a"), |flag, i| {
            flag.rule(Rule::new("on").when(Condition::equals(format!("attr{i}"), i)))
        });
        let (snap, _) = snapshot(vec![flag]);
        for i in 0..12 {
            let ctx = EvaluationContext::new().attribute(format!("attr{i}"), i);
            assert_eq!(
                outcome(&snap, "a", &ctx),
                ok("on", Reason::TargetingMatch),
                "attr{i}"
            );
            let wrong = EvaluationContext::new().attribute(format!("attr{i}"), i + 1);
            assert_eq!(
                outcome(&snap, "a", &wrong),
                ok("off", Reason::Default),
                "attr{i}"
            );
        }
    }

    #[test]
    fn the_key_hasher_tells_similar_keys_apart() {
        use std::hash::BuildHasher;
        let build = BuildHasherDefault::<KeyHasher>::default();
        let hashes: std::collections::HashSet<u64> = (0..10_000)
            .map(|i| build.hash_one(format!("checkout.flag-{i}").as_str()))
            .collect();
        assert_eq!(hashes.len(), 10_000);
        assert_ne!(build.hash_one("a"), build.hash_one("a\0"));
    }

    #[test]
    fn an_older_version_never_replaces_a_newer_one() {
        let (snap, counters) = snapshot(vec![]);
        let newer = snap.with(
            "a",
            Some(StoredFlag::new(Flag::boolean("a"), 5)),
            5,
            &counters,
        );
        let older = newer.with("a", None, 4, &counters);
        assert_eq!(older.get("a").map(|s| s.version), Some(5));
    }
}
