//! The deserializer behind [`crate::Loader`]: figment's merged value tree in,
//! a typed settings struct out, with what serde alone does not give:
//!
//! - the dotted key and the value's tag (hence its origin) on every error;
//! - unknown keys noted (with the struct's field names, for suggestions) and
//!   left out, instead of silently ignored or failing the whole struct;
//! - environment strings read as the type the field asks for (`"8080"` for a
//!   `u16`, `"a,b"` for a `Vec<String>`);
//! - keys to skip and placeholders to fill, so that the loader can deserialize
//!   again after an error and report every problem of a load at once;
//! - secrets recognised by their type, so that their errors are redacted.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use figment::value::{Dict, Empty, Num, Tag, Value};
use serde::de::{
    self, DeserializeSeed, Deserializer as _, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    Unexpected, VariantAccess, Visitor,
};

use crate::secret::SECRET_MARKER;

/// String values tried, in turn, for a placeholder asked to be a string, so
/// that common string-parsed types (addresses, durations, sizes, URLs) accept
/// one of them. A placeholder is never used: it only lets the loader carry on
/// looking for more problems after an earlier one.
const PLACEHOLDER_STRS: [&str; 7] = [
    "",
    "0",
    "0s",
    "0.0.0.0:0",
    "127.0.0.1",
    "http://localhost/",
    "localhost",
];
/// How many different things a placeholder can pretend to be.
pub(crate) const PLACEHOLDER_MODES: usize = PLACEHOLDER_STRS.len();

/// The placeholder mode of a missing key first tried as an empty table: if
/// the key is a section, its own required keys are then reported one by one
/// (`database.url` rather than `database`), and if all of them have
/// defaults, nothing was missing at all.
pub(crate) const EMPTY_TABLE: usize = usize::MAX;

static EMPTY_TABLE_VALUE: Value = Value::Dict(Tag::Default, Dict::new());

/// What one deserialization pass is told and what it notices.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// Keys treated as absent (their value was already reported as invalid).
    pub(crate) skip: HashSet<String>,
    /// Missing keys filled with a placeholder of the given mode.
    pub(crate) placeholders: HashMap<String, usize>,
    /// Keys whose type is a `Secret`.
    pub(crate) secrets: RefCell<HashSet<String>>,
    /// Missing keys that are maps, not sections.
    pub(crate) maps: RefCell<HashSet<String>>,
    /// Keys no struct field accepts, with the tag of their value and the
    /// field names of the struct they were found in.
    pub(crate) unknown: RefCell<BTreeMap<String, (Tag, &'static [&'static str])>>,
    /// Keys a struct took by one of its field names (aliases included).
    pub(crate) accepted: RefCell<HashSet<String>>,
    /// The field names of the settings type itself (its sections), known
    /// even when a value below them does not parse.
    pub(crate) root_fields: RefCell<HashSet<&'static str>>,
}

/// Joins a parent key and a child name into a dotted key.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

/// Whether `key` is `ancestor` or lies below it.
pub(crate) fn is_within(key: &str, ancestor: &str) -> bool {
    ancestor.is_empty()
        || key == ancestor
        || key
            .strip_prefix(ancestor)
            .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
}

/// A deserialization error with the key and tag of the value it concerns.
#[derive(Debug, Clone)]
pub(crate) struct Error {
    pub(crate) path: Option<String>,
    pub(crate) tag: Tag,
    pub(crate) kind: ErrorKind,
    /// The problem is a map entry's key, not its value: the value, never
    /// read, was not seen to be a secret, so it is not to be shown.
    pub(crate) of_key: bool,
}

#[derive(Debug, Clone)]
pub(crate) enum ErrorKind {
    Custom(String),
    InvalidType {
        found: &'static str,
        expected: String,
    },
    InvalidValue {
        expected: String,
    },
    InvalidLength {
        len: usize,
        expected: String,
    },
    UnknownVariant {
        variant: String,
        expected: &'static [&'static str],
    },
    UnknownField {
        expected: &'static [&'static str],
    },
    MissingField(&'static str),
    DuplicateField(&'static str),
    PlaceholderExhausted,
}

impl Error {
    fn new(kind: ErrorKind) -> Self {
        Self {
            path: None,
            tag: Tag::Default,
            kind,
            of_key: false,
        }
    }

    /// Sets the key and tag unless an inner value already set them.
    fn at(mut self, path: &str, tag: Tag) -> Self {
        if self.path.is_none() {
            self.path = Some(path.to_owned());
            self.tag = tag;
        }
        self
    }
}

/// What kind of thing an `Unexpected` is, without its value: serde's own
/// messages quote the value, which may be a secret.
fn kind_of(unexpected: &Unexpected<'_>) -> &'static str {
    match unexpected {
        Unexpected::Bool(_) => "a boolean",
        Unexpected::Unsigned(_) | Unexpected::Signed(_) | Unexpected::Float(_) => "a number",
        Unexpected::Char(_) => "a character",
        Unexpected::Str(_) => "a string",
        Unexpected::Bytes(_) => "bytes",
        Unexpected::Unit => "nothing",
        Unexpected::Option => "an optional value",
        Unexpected::NewtypeStruct | Unexpected::NewtypeVariant => "a wrapped value",
        Unexpected::Seq | Unexpected::TupleVariant => "a list",
        Unexpected::Map | Unexpected::StructVariant => "a table",
        Unexpected::Enum | Unexpected::UnitVariant => "a choice",
        Unexpected::Other(_) => "another kind of value",
    }
}

impl de::Error for Error {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self::new(ErrorKind::Custom(msg.to_string()))
    }

    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(ErrorKind::InvalidType {
            found: kind_of(&unexp),
            expected: exp.to_string(),
        })
    }

    fn invalid_value(_unexp: Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        Self::new(ErrorKind::InvalidValue {
            expected: exp.to_string(),
        })
    }

    fn invalid_length(len: usize, exp: &dyn de::Expected) -> Self {
        Self::new(ErrorKind::InvalidLength {
            len,
            expected: exp.to_string(),
        })
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::new(ErrorKind::UnknownVariant {
            variant: variant.to_owned(),
            expected,
        })
    }

    fn unknown_field(_field: &str, expected: &'static [&'static str]) -> Self {
        Self::new(ErrorKind::UnknownField { expected })
    }

    fn missing_field(field: &'static str) -> Self {
        Self::new(ErrorKind::MissingField(field))
    }

    fn duplicate_field(field: &'static str) -> Self {
        Self::new(ErrorKind::DuplicateField(field))
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Custom(msg) => f.write_str(msg),
            Self::InvalidType { found, expected } => {
                write!(f, "expected {expected}, found {found}")
            }
            Self::InvalidValue { expected } => write!(f, "invalid value: expected {expected}"),
            Self::InvalidLength { len, expected } => {
                write!(f, "expected {expected}, found {len} items")
            }
            Self::UnknownVariant { variant, expected } => {
                write!(f, "unknown value `{variant}`; expected one of ")?;
                write_list(f, expected)
            }
            Self::UnknownField { .. } => f.write_str("unknown key"),
            Self::MissingField(_) => f.write_str("missing required key"),
            Self::DuplicateField(field) => write!(f, "`{field}` is given twice"),
            Self::PlaceholderExhausted => f.write_str("cannot continue past an earlier error"),
        }
    }
}

pub(crate) fn write_list(f: &mut impl fmt::Write, items: &[&str]) -> fmt::Result {
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "`{item}`")?;
    }
    Ok(())
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) if !path.is_empty() => write!(f, "{path}: {}", self.kind),
            _ => self.kind.fmt(f),
        }
    }
}

impl std::error::Error for Error {}

type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, Copy)]
enum Node<'de> {
    /// A value from a file or from figment's tree.
    Value(&'de Value),
    /// One item of a comma-separated environment value.
    Str(&'de str, Tag),
    /// A stand-in for a missing key; the mode picks what it pretends to be.
    Placeholder(usize),
}

/// Deserializes one node of the value tree.
#[derive(Debug)]
pub(crate) struct De<'de> {
    node: Node<'de>,
    path: String,
    session: &'de Session,
}

impl<'de> De<'de> {
    pub(crate) fn root(value: &'de Value, session: &'de Session) -> Self {
        Self {
            node: Node::Value(value),
            path: String::new(),
            session,
        }
    }

    fn child(&self, node: Node<'de>, path: String) -> Self {
        Self {
            node,
            path,
            session: self.session,
        }
    }

    fn tag(&self) -> Tag {
        match self.node {
            Node::Value(v) => v.tag(),
            Node::Str(_, tag) => tag,
            Node::Placeholder(_) => Tag::Default,
        }
    }

    /// The text of a string node: environment values and `--set` overrides
    /// arrive as strings and are read as whatever the field asks for.
    fn as_str(&self) -> Option<&'de str> {
        match self.node {
            Node::Value(Value::String(_, s)) => Some(s),
            Node::Str(s, _) => Some(s),
            _ => None,
        }
    }

    fn placeholder_mode(&self) -> Option<usize> {
        match self.node {
            Node::Placeholder(mode) => Some(mode),
            _ => None,
        }
    }

    fn visit_number_text<V: Visitor<'de>>(self, text: &str, visitor: V) -> Result<V::Value> {
        let t = text.trim();
        if let Ok(n) = t.parse::<u64>() {
            visitor.visit_u64(n)
        } else if let Ok(n) = t.parse::<i64>() {
            visitor.visit_i64(n)
        } else if let Ok(n) = t.parse::<u128>() {
            visitor.visit_u128(n)
        } else if let Ok(n) = t.parse::<i128>() {
            visitor.visit_i128(n)
        } else if let Ok(n) = t.parse::<f64>() {
            visitor.visit_f64(n)
        } else {
            Err(de::Error::invalid_type(Unexpected::Str(text), &visitor))
        }
    }

    fn deserialize_number<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            return visitor.visit_u8(0);
        }
        match self.as_str() {
            Some(text) => self.visit_number_text(text, visitor),
            None => self.deserialize_any(visitor),
        }
    }

    fn map_access(&self, dict: &'de Dict, fields: Option<&'static [&'static str]>) -> MapDe<'de> {
        if self.path.is_empty()
            && let Some(fields) = fields
        {
            self.session.root_fields.borrow_mut().extend(fields);
        }
        let mut entries = Vec::with_capacity(dict.len());
        for (key, value) in dict {
            let path = join(&self.path, key);
            if self.session.skip.contains(&path) {
                continue;
            }
            if let Some(fields) = fields {
                if fields.contains(&key.as_str()) {
                    self.session.accepted.borrow_mut().insert(path.clone());
                } else {
                    // Left out rather than handed to the struct: an unknown key is
                    // reported by the loader with a suggestion, whether or not the
                    // struct denies unknown fields.
                    self.session
                        .unknown
                        .borrow_mut()
                        .insert(path, (value.tag(), fields));
                    continue;
                }
            }
            entries.push((key.as_str(), Node::Value(value), path));
        }
        for field in fields.unwrap_or_default() {
            let path = join(&self.path, field);
            if let Some(&mode) = self.session.placeholders.get(&path)
                && !entries.iter().any(|(key, _, _)| key == field)
            {
                let node = if mode == EMPTY_TABLE {
                    Node::Value(&EMPTY_TABLE_VALUE)
                } else {
                    Node::Placeholder(mode)
                };
                entries.push((field, node, path));
            }
        }
        MapDe {
            entries: entries.into_iter(),
            value: None,
            session: self.session,
        }
    }

    fn seq_access(&self, items: Vec<Node<'de>>) -> SeqDe<'de> {
        let items: Vec<_> = items
            .into_iter()
            .enumerate()
            .map(|(i, node)| (node, index(&self.path, i)))
            .filter(|(_, path)| !self.session.skip.contains(path))
            .collect();
        SeqDe {
            items: items.into_iter(),
            session: self.session,
        }
    }

    fn placeholder_any<V: Visitor<'de>>(self, mode: usize, visitor: V) -> Result<V::Value> {
        match mode {
            0 => visitor.visit_borrowed_str(""),
            1 => visitor.visit_u8(0),
            2 => visitor.visit_bool(false),
            3 => visitor.visit_unit(),
            4 => visitor.visit_map(self.map_access(&EMPTY_DICT, None)),
            5 => visitor.visit_seq(self.seq_access(Vec::new())),
            _ => Err(Error::new(ErrorKind::PlaceholderExhausted)),
        }
    }
}

static EMPTY_DICT: Dict = Dict::new();

fn visit_num<'de, V: Visitor<'de>>(num: Num, visitor: V) -> Result<V::Value> {
    match num {
        Num::U8(n) => visitor.visit_u8(n),
        Num::U16(n) => visitor.visit_u16(n),
        Num::U32(n) => visitor.visit_u32(n),
        Num::U64(n) => visitor.visit_u64(n),
        Num::U128(n) => visitor.visit_u128(n),
        Num::USize(n) => visitor.visit_u64(n as u64),
        Num::I8(n) => visitor.visit_i8(n),
        Num::I16(n) => visitor.visit_i16(n),
        Num::I32(n) => visitor.visit_i32(n),
        Num::I64(n) => visitor.visit_i64(n),
        Num::I128(n) => visitor.visit_i128(n),
        Num::ISize(n) => visitor.visit_i64(n as i64),
        Num::F32(n) => visitor.visit_f32(n),
        Num::F64(n) => visitor.visit_f64(n),
    }
}

fn num_text(num: Num) -> String {
    match num {
        Num::U8(n) => n.to_string(),
        Num::U16(n) => n.to_string(),
        Num::U32(n) => n.to_string(),
        Num::U64(n) => n.to_string(),
        Num::U128(n) => n.to_string(),
        Num::USize(n) => n.to_string(),
        Num::I8(n) => n.to_string(),
        Num::I16(n) => n.to_string(),
        Num::I32(n) => n.to_string(),
        Num::I64(n) => n.to_string(),
        Num::I128(n) => n.to_string(),
        Num::ISize(n) => n.to_string(),
        Num::F32(n) => n.to_string(),
        Num::F64(n) => n.to_string(),
    }
}

/// A scalar value as a person would write it, for messages and the dump.
pub(crate) fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(_, s) => Some(s.clone()),
        Value::Char(_, c) => Some(c.to_string()),
        Value::Bool(_, b) => Some(b.to_string()),
        Value::Num(_, n) => Some(num_text(*n)),
        Value::Empty(..) | Value::Dict(..) | Value::Array(..) => None,
    }
}

macro_rules! numbers {
    ($($method:ident)*) => {
        $(
            fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
                self.deserialize_number(visitor)
            }
        )*
    };
}

impl<'de> de::Deserializer<'de> for De<'de> {
    type Error = Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        let value = match self.node {
            Node::Placeholder(mode) => return self.placeholder_any(mode, visitor),
            Node::Str(s, _) => return visitor.visit_borrowed_str(s),
            Node::Value(value) => value,
        };
        match value {
            Value::String(_, s) => visitor.visit_borrowed_str(s),
            Value::Char(_, c) => visitor.visit_char(*c),
            Value::Bool(_, b) => visitor.visit_bool(*b),
            Value::Num(_, n) => visit_num(*n, visitor),
            Value::Empty(_, Empty::None) => visitor.visit_none(),
            Value::Empty(_, Empty::Unit) => visitor.visit_unit(),
            Value::Dict(_, dict) => visitor.visit_map(self.map_access(dict, None)),
            Value::Array(_, items) => {
                visitor.visit_seq(self.seq_access(items.iter().map(Node::Value).collect()))
            }
        }
    }

    numbers! {
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128
        deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_f32 deserialize_f64
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            return visitor.visit_bool(false);
        }
        match self.as_str() {
            Some(text) => match text.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => visitor.visit_bool(true),
                "false" | "0" => visitor.visit_bool(false),
                _ => Err(de::Error::invalid_type(Unexpected::Str(text), &visitor)),
            },
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            return visitor.visit_char(' ');
        }
        match self.as_str() {
            Some(text) if text.chars().count() == 1 => {
                visitor.visit_char(text.chars().next().unwrap_or(' '))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Placeholder(mode) => match PLACEHOLDER_STRS.get(mode) {
                Some(s) => visitor.visit_borrowed_str(s),
                None => Err(Error::new(ErrorKind::PlaceholderExhausted)),
            },
            // A float is not taken as text: `1.10` would become "1.1",
            // `1e3` "1000". The type error asks for quotes instead.
            Node::Value(Value::Num(_, Num::F32(_) | Num::F64(_))) => self.deserialize_any(visitor),
            Node::Value(Value::Num(_, n)) => visitor.visit_string(num_text(*n)),
            Node::Value(Value::Bool(_, b)) => visitor.visit_string(b.to_string()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            return visitor.visit_borrowed_bytes(&[]);
        }
        match self.as_str() {
            Some(text) => visitor.visit_borrowed_bytes(text.as_bytes()),
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_bytes(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Placeholder(_) | Node::Value(Value::Empty(..)) => visitor.visit_none(),
            // An empty environment value unsets an optional setting.
            _ if self.as_str().is_some_and(str::is_empty) => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.node {
            Node::Placeholder(_) | Node::Value(Value::Empty(..)) => visitor.visit_unit(),
            _ if self.as_str().is_some_and(str::is_empty) => visitor.visit_unit(),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        if name == SECRET_MARKER {
            self.session.secrets.borrow_mut().insert(self.path.clone());
        }
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            return visitor.visit_seq(self.seq_access(Vec::new()));
        }
        match self.as_str() {
            // Environment variables hold lists as `a,b,c`.
            Some(text) => {
                // A JSON list of plain strings is taken as the list it is,
                // each item a value of its own (a secret's included). Any
                // other JSON list would split into items that keep its
                // brackets and quotes (`["a"` and `"b"]`): refused, without
                // quoting it. `[::1]` is no JSON and stays one item.
                let trimmed = text.trim();
                if trimmed.starts_with('[') {
                    if let Ok(items) = serde_json::from_str::<Vec<&'de str>>(trimmed) {
                        let tag = self.tag();
                        let items = items.into_iter().map(|item| Node::Str(item, tag)).collect();
                        return visitor.visit_seq(self.seq_access(items));
                    }
                    if serde_json::from_str::<serde_json::Value>(trimmed)
                        .is_ok_and(|value| value.is_array())
                    {
                        return Err(de::Error::custom(
                            "a list is written `a,b,c` here, without brackets or quotes",
                        ));
                    }
                }
                let tag = self.tag();
                let items = if text.trim().is_empty() {
                    Vec::new()
                } else {
                    text.split(',').map(|s| Node::Str(s.trim(), tag)).collect()
                };
                visitor.visit_seq(self.seq_access(items))
            }
            None => self.deserialize_any(visitor),
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            return visitor.visit_map(self.map_access(&EMPTY_DICT, None));
        }
        // A missing key is first tried as an empty table, so that a
        // section's own missing keys are reported. A map has none: empty,
        // a required map would start the service with no entries at all,
        // so the key itself is missing. Maps (std's, figment's, serde_json's,
        // IndexMap) say they expect "a map"; other types that come here (a
        // struct with flattened fields, a hand-written section) are
        // sections and load their defaults.
        if let Node::Value(value) = self.node
            && std::ptr::eq(value, &EMPTY_TABLE_VALUE)
            && (&visitor as &dyn de::Expected).to_string() == "a map"
        {
            self.session.maps.borrow_mut().insert(self.path.clone());
            return Err(de::Error::invalid_type(Unexpected::Map, &visitor));
        }
        self.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.node {
            Node::Placeholder(_) => visitor.visit_map(self.map_access(&EMPTY_DICT, Some(fields))),
            Node::Value(Value::Dict(_, dict)) => {
                visitor.visit_map(self.map_access(dict, Some(fields)))
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        if self.placeholder_mode().is_some() {
            let variant = variants.first().copied().unwrap_or_default();
            return visitor.visit_enum(EnumDe {
                variant,
                value: Some(self),
            });
        }
        if let Some(variant) = self.as_str() {
            return visitor.visit_enum(EnumDe {
                variant: variant.trim(),
                value: None,
            });
        }
        match self.node {
            Node::Value(Value::Dict(_, dict)) if dict.len() == 1 => {
                let Some((variant, value)) = dict.iter().next() else {
                    return self.deserialize_any(visitor);
                };
                let path = join(&self.path, variant);
                let value = self.child(Node::Value(value), path);
                visitor.visit_enum(EnumDe {
                    variant,
                    value: Some(value),
                })
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        visitor.visit_unit()
    }
}

struct MapDe<'de> {
    entries: std::vec::IntoIter<(&'de str, Node<'de>, String)>,
    value: Option<(Node<'de>, String)>,
    session: &'de Session,
}

impl<'de> MapAccess<'de> for MapDe<'de> {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        let Some((key, node, path)) = self.entries.next() else {
            return Ok(None);
        };
        let tag = De {
            node,
            path: String::new(),
            session: self.session,
        }
        .tag();
        let key = seed
            .deserialize(IntoDeserializer::<Error>::into_deserializer(key))
            .map_err(|e| {
                let mut e = e.at(&path, tag);
                e.of_key = true;
                e
            })?;
        self.value = Some((node, path));
        Ok(Some(key))
    }

    fn next_value_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<S::Value> {
        let Some((node, path)) = self.value.take() else {
            return Err(de::Error::custom("a value was asked for before its key"));
        };
        let de = De {
            node,
            path,
            session: self.session,
        };
        let (path, tag) = (de.path.clone(), de.tag());
        seed.deserialize(de).map_err(|e| e.at(&path, tag))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.entries.len())
    }
}

struct SeqDe<'de> {
    items: std::vec::IntoIter<(Node<'de>, String)>,
    session: &'de Session,
}

impl<'de> SeqAccess<'de> for SeqDe<'de> {
    type Error = Error;

    fn next_element_seed<S: DeserializeSeed<'de>>(&mut self, seed: S) -> Result<Option<S::Value>> {
        let Some((node, path)) = self.items.next() else {
            return Ok(None);
        };
        let de = De {
            node,
            path,
            session: self.session,
        };
        let (path, tag) = (de.path.clone(), de.tag());
        seed.deserialize(de).map(Some).map_err(|e| e.at(&path, tag))
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.items.len())
    }
}

struct EnumDe<'de> {
    variant: &'de str,
    /// The variant's content; `None` for a variant given as a plain string.
    value: Option<De<'de>>,
}

impl<'de> EnumAccess<'de> for EnumDe<'de> {
    type Error = Error;
    type Variant = Self;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Self)> {
        let variant =
            seed.deserialize(IntoDeserializer::<Error>::into_deserializer(self.variant))?;
        Ok((variant, self))
    }
}

impl<'de> VariantAccess<'de> for EnumDe<'de> {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        match self.value {
            None => Ok(()),
            Some(de) if de.placeholder_mode().is_some() => Ok(()),
            Some(_) => Err(de::Error::invalid_type(
                Unexpected::StructVariant,
                &"a plain choice",
            )),
        }
    }

    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value> {
        match self.value {
            Some(de) => {
                let (path, tag) = (de.path.clone(), de.tag());
                seed.deserialize(de).map_err(|e| e.at(&path, tag))
            }
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a choice with a value",
            )),
        }
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        match self.value {
            Some(de) => de::Deserializer::deserialize_seq(de, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a choice with a list",
            )),
        }
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        match self.value {
            Some(de) => de::Deserializer::deserialize_struct(de, "", fields, visitor),
            None => Err(de::Error::invalid_type(
                Unexpected::UnitVariant,
                &"a choice with a table",
            )),
        }
    }
}
