//! Credentials found in free text: what an error's message may quote
//! (a connection string, a URL with a token, a header) before it reaches a
//! log line, an error tracker or a probe's output.

use std::borrow::Cow;
use std::ops::Range;

/// What a masked credential reads as, in every crate of opsready.
pub const REDACTED: &str = "[REDACTED]";

/// Parts of names whose values are credentials: `password`, `db_password`,
/// `X-Api-Key`, `sentry.dsn`, `access_token`… Their first letters are
/// listed again in [`is_sensitive_name`]; a test keeps the two in step.
const SENSITIVE: [&str; 11] = [
    "password",
    "passwd",
    "passphrase",
    "secret",
    "token",
    "api_key",
    "apikey",
    "private_key",
    "credential",
    "dsn",
    "authorization",
];

/// Names of credentials too short or too common to be looked for inside
/// other names (`keyboard`, `passenger`, `signal`, `author`): credentials
/// only as the whole name or its last word. A URL's `?sig=` (an Azure SAS)
/// and `X-Amz-Signature`, ODBC's `Pwd=`, a `jwt`, a `session`,
/// `JSESSIONID` or `PHPSESSID` cookie, a `Cookie` header. A session id in
/// two words (`session_id`, `X-Session-Id`, `sessionId`) is one too; `id`
/// alone is not, nor `sid` (Twilio's `AccountSid`, `ORACLE_SID`), but for
/// Express's session cookie, `connect.sid`, as a whole name.
const LAST_WORDS: [&str; 10] = [
    "sig",
    "signature",
    "pwd",
    "pass",
    "jwt",
    "session",
    "sessionid",
    "jsessionid",
    "phpsessid",
    "cookie",
];

/// Names that are credentials as a URL's query parameters (`?key=` of
/// Google's APIs, `?auth=` of Firebase's) but too common to mask anywhere
/// else: a flag's `key`, an `auth` mode.
const QUERY_WORDS: [&str; 3] = ["key", "auth", "access_key"];

/// The schemes of an `Authorization` value, whose credential is the word
/// after them.
const AUTH_SCHEMES: [&str; 4] = ["bearer", "basic", "digest", "token"];

/// Words that, right after a credential's name, make the whole name one of
/// the credential's properties rather than the credential itself:
/// `token_count`, `token_type`, `password_file`, `secret_name`,
/// `promptTokenCount`. Not `id`: Vault's `secret_id` is a credential; nor
/// `url`: a bot's token travels in its URL's path.
const PROPERTIES: [&str; 17] = [
    "count",
    "len",
    "length",
    "size",
    "type",
    "kind",
    "ttl",
    "expiry",
    "expires",
    "expiration",
    "endpoint",
    "path",
    "file",
    "name",
    "limit",
    "usage",
    "budget",
];

/// Words that may follow a property word and leave it a property
/// (`token_expires_in`, `token_ttl_seconds`); any other word after it
/// (`password_file_contents`) makes the name a credential's again.
const PROPERTY_TAILS: [&str; 7] = ["at", "in", "ms", "secs", "seconds", "minutes", "hours"];

/// Words that, before `tokens`, make it a count of a language model's
/// tokens (`max_tokens`, `prompt_tokens`, `maxNewTokens`) rather than a
/// list of credentials (`api_tokens`, `new_tokens`, `cached_tokens`).
const TOKEN_COUNTS: [&str; 9] = [
    "max",
    "min",
    "prompt",
    "completion",
    "total",
    "input",
    "output",
    "reasoning",
    "num",
];

/// Whether a name (of a setting, a query parameter, a field, a header)
/// names a credential: it contains `password`, `secret`, `token`,
/// `api_key`… in any case, with `-` counting as `_`.
///
/// A name for one of a credential's properties is not one: the credential's
/// part followed by a word such as `count`, `type`, `ttl`, `file` or `name`,
/// and by nothing but such words or a unit (`token_count`, `secret_name`,
/// `tokenType`, `token_expires_in`); a language model's token counts
/// (`max_tokens`, `prompt_tokens`, `total_tokens`); and words that only
/// start like one (`tokenizer`).
///
/// ```
/// use opsready_vocab::is_sensitive_name;
///
/// assert!(is_sensitive_name("DB_PASSWORD"));
/// assert!(is_sensitive_name("x-api-key"));
/// assert!(is_sensitive_name("refresh_tokens"));
/// assert!(!is_sensitive_name("host"));
/// assert!(!is_sensitive_name("token_count"));
/// assert!(!is_sensitive_name("max_tokens"));
/// ```
pub fn is_sensitive_name(name: &str) -> bool {
    let name = name.as_bytes();
    if LAST_WORDS.iter().any(|word| last_word_is(name, word)) {
        return true;
    }
    if name.eq_ignore_ascii_case(b"connect.sid") {
        return true;
    }
    // `session_id`, `X-Session-Id`, `sessionId`: `session` right before a
    // last word `id`.
    if last_word_is(name, "id")
        && word_before(name, name.len() - 2)
            .is_some_and(|word| name[word].eq_ignore_ascii_case(b"session"))
    {
        return true;
    }
    // Every log line asks this of its fields' names: each position is
    // tried only against the parts that start with its letter.
    (0..name.len()).any(|start| {
        let first = name[start].to_ascii_lowercase();
        if !matches!(first, b'a' | b'c' | b'd' | b'p' | b's' | b't') {
            return false;
        }
        SENSITIVE.iter().any(|part| {
            part.as_bytes()[0] == first
                && name.len() - start >= part.len()
                && name[start..start + part.len()]
                    .iter()
                    .zip(part.bytes())
                    .all(|(&b, p)| {
                        let b = if b == b'-' { b'_' } else { b };
                        b.eq_ignore_ascii_case(&p)
                    })
                && names_the_credential(name, start, start + part.len(), part)
        })
    })
}

/// Whether the part `name[start..end]` found in `name` stands for the
/// credential itself, not for one of its properties or a longer word.
fn names_the_credential(name: &[u8], start: usize, end: usize, part: &str) -> bool {
    let mut end = end;
    let mut plural = false;
    if part == "token" {
        if name[end..].len() >= 2 && name[end..end + 2].eq_ignore_ascii_case(b"iz") {
            // tokenizer, tokenize, tokenization
            return false;
        }
        if name.get(end).is_some_and(|b| b.eq_ignore_ascii_case(&b's'))
            && word_ends_at(name, end + 1)
        {
            plural = true;
            end += 1;
        }
    }
    let is_one_of =
        |word: &[u8], list: &[&str]| list.iter().any(|w| word.eq_ignore_ascii_case(w.as_bytes()));
    // The words after the part: a property, then only properties or their
    // tails.
    let mut at = end;
    let mut property = false;
    while let Some(word) = word_after(name, at) {
        let text = &name[word.clone()];
        property = is_one_of(text, &PROPERTIES) || (property && is_one_of(text, &PROPERTY_TAILS));
        if !property {
            break;
        }
        at = word.end;
    }
    if property {
        return false;
    }
    if !plural {
        return true;
    }
    // `tokens` right after a language model's count word, or after `new`
    // right after one (`max_new_tokens`), within the same dotted part; or
    // followed by `used` (`tokens_used`).
    let mut before = start;
    for _ in 0..2 {
        if before == 0 || name[before - 1] == b'.' {
            break;
        }
        let Some(word) = word_before(name, before) else {
            break;
        };
        let text = &name[word.clone()];
        if is_one_of(text, &TOKEN_COUNTS) {
            return false;
        }
        if !text.eq_ignore_ascii_case(b"new") {
            break;
        }
        before = word.start;
    }
    !word_after(name, end).is_some_and(|word| name[word].eq_ignore_ascii_case(b"used"))
}

fn is_separator(byte: u8) -> bool {
    matches!(byte, b'_' | b'-' | b'.')
}

/// Whether a camel-case word starts at `at` (`tokenCount`: at the `C`;
/// `x509Signature`: at the `S`).
fn is_hump(name: &[u8], at: usize) -> bool {
    at > 0
        && at < name.len()
        && name[at].is_ascii_uppercase()
        && (name[at - 1].is_ascii_lowercase() || name[at - 1].is_ascii_digit())
}

/// Whether `word` is the whole of `name` or its last word (after a
/// separator or at a camel-case hump: `x-amz-signature`, `xAmzSignature`).
fn last_word_is(name: &[u8], word: &str) -> bool {
    let Some(start) = name.len().checked_sub(word.len()) else {
        return false;
    };
    name[start..].eq_ignore_ascii_case(word.as_bytes())
        && (start == 0 || is_separator(name[start - 1]) || is_hump(name, start))
}

fn word_ends_at(name: &[u8], at: usize) -> bool {
    at == name.len() || is_separator(name[at]) || is_hump(name, at)
}

/// Where the word that follows a word ending at `end` is: after a
/// separator or at a hump. `None` when the word at `end` goes on
/// (`passwordhash`).
fn word_after(name: &[u8], end: usize) -> Option<Range<usize>> {
    let begin = match name.get(end) {
        Some(&byte) if is_separator(byte) => end + 1,
        Some(_) if is_hump(name, end) => end,
        _ => return None,
    };
    let stop = (begin + 1..=name.len())
        .find(|&at| word_ends_at(name, at))
        .unwrap_or(name.len());
    Some(begin.min(stop)..stop)
}

/// Where the word before a word starting at `start` is: before a separator
/// or a hump.
fn word_before(name: &[u8], start: usize) -> Option<Range<usize>> {
    let stop = if start > 0 && is_separator(name[start - 1]) {
        start - 1
    } else if is_hump(name, start) {
        start
    } else {
        return None;
    };
    let mut begin = stop;
    while begin > 0 && !is_separator(name[begin - 1]) {
        begin -= 1;
        if is_hump(name, begin) {
            break;
        }
    }
    Some(begin..stop)
}

/// `text` with the credentials it quotes masked as [`REDACTED`]:
///
/// - the password of a URL (`postgres://app:[REDACTED]@db/app`);
/// - the value of a sensitive name ([`is_sensitive_name`]) given with `=`
///   (a query parameter, a `key=value` connection string), or with `:` and
///   a quoted value (JSON, Rust's `Debug` of a struct);
/// - the credential of an `Authorization` value (`Bearer [REDACTED]`).
///
/// Text without any is returned as it is, without a copy, after one pass
/// over its bytes. A safety net for messages that should not have quoted a
/// credential at all: it cannot know a secret that nothing names.
///
/// ```
/// use opsready_vocab::redact_secrets;
///
/// assert_eq!(
///     redact_secrets("connecting to postgres://app:hunter2@db/app?sslmode=require: refused"),
///     "connecting to postgres://app:[REDACTED]@db/app?sslmode=require: refused",
/// );
/// assert_eq!(
///     redact_secrets("error sending request for url (https://api.example/v1?api_key=abc123&page=2)"),
///     "error sending request for url (https://api.example/v1?api_key=[REDACTED]&page=2)",
/// );
/// assert_eq!(redact_secrets(r#"Config { password: "hunter2" }"#), r#"Config { password: "[REDACTED]" }"#);
/// assert_eq!(redact_secrets("password authentication failed"), "password authentication failed");
/// ```
pub fn redact_secrets(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let mut masked: Vec<Range<usize>> = Vec::new();
    // Separators inside what is already masked are part of the secret
    // (`token=a=b`, a URL's password with `=` in it): skipping them keeps
    // the pass linear, and the ranges apart.
    let mut covered = 0;
    for (at, &byte) in bytes.iter().enumerate() {
        if at < covered {
            continue;
        }
        match byte {
            b':' if bytes[at + 1..].starts_with(b"//") => url_password(bytes, at, &mut masked),
            b':' | b'=' => named_value(bytes, at, &mut masked),
            b' ' => scheme_credential(bytes, at, &mut masked),
            _ => continue,
        }
        if let Some(last) = masked.last() {
            covered = covered.max(last.end);
        }
    }
    if masked.is_empty() {
        return Cow::Borrowed(text);
    }
    masked.sort_by_key(|range| range.start);
    let mut out = String::with_capacity(text.len());
    let mut written = 0;
    for range in masked {
        // Ranges found at one separator can still overlap: each byte is
        // masked once.
        if range.end <= written {
            continue;
        }
        let start = range.start.max(written);
        out.push_str(&text[written..start]);
        if start == range.start {
            out.push_str(REDACTED);
        }
        written = range.end;
    }
    out.push_str(&text[written..]);
    Cow::Owned(out)
}

/// Masks, in place, the credentials `text` quotes, as [`redact_secrets`]
/// does; `text` is left untouched when it quotes none. Whether it did.
///
/// ```
/// use opsready_vocab::redact_secrets_in;
///
/// let mut error = String::from("GET https://h/items?token=abc: timed out");
/// assert!(redact_secrets_in(&mut error));
/// assert_eq!(error, "GET https://h/items?token=[REDACTED]: timed out");
/// ```
pub fn redact_secrets_in(text: &mut String) -> bool {
    match redact_secrets(text) {
        Cow::Owned(masked) => {
            *text = masked;
            true
        }
        Cow::Borrowed(_) => false,
    }
}

/// Whether `byte` ends a value that is not quoted. Every range found starts
/// and ends at an ASCII byte or at an end of the text, so slicing the text
/// there always falls on a character boundary.
fn ends_value(byte: u8) -> bool {
    byte.is_ascii_whitespace()
        || matches!(
            byte,
            b'&' | b';' | b',' | b')' | b']' | b'}' | b'>' | b'"' | b'\'' | b'#'
        )
}

/// The credential of the URL whose scheme ends at `colon`
/// (`scheme://user:password@host`): its password, or for `http` and
/// `https`, a user with no password, which there is a token
/// (`https://ghp_…@github.com`, a Sentry DSN's key).
fn url_password(bytes: &[u8], colon: usize, masked: &mut Vec<Range<usize>>) {
    let start = colon + 3;
    // The authority ends where the path, query or fragment starts, or the
    // URL does; `&`, `;` and the like may be part of a password.
    let end = bytes[start..]
        .iter()
        .position(|&b| {
            matches!(b, b'/' | b'?' | b'#' | b'"' | b'\'' | b'<' | b'>') || b.is_ascii_whitespace()
        })
        .map_or(bytes.len(), |i| start + i);
    let authority = &bytes[start..end];
    let Some(at) = authority.iter().rposition(|&b| b == b'@') else {
        return;
    };
    match authority[..at].iter().position(|&b| b == b':') {
        Some(password) if password + 1 < at => masked.push(start + password + 1..start + at),
        Some(_) => {}
        None => {
            let scheme_start = bytes[..colon]
                .iter()
                .rposition(|b| !b.is_ascii_alphanumeric())
                .map_or(0, |i| i + 1);
            let scheme = &bytes[scheme_start..colon];
            if at > 0
                && (scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https"))
            {
                masked.push(start..start + at);
            }
        }
    }
}

/// The value of a sensitive name whose separator (`=` or `:`) is at `at`:
/// `password=…`, `password = …`, `"token": "…"`, `\"token\":\"…\"` (JSON
/// in a `Debug` string), `secret: Some("…")`.
fn named_value(bytes: &[u8], at: usize, masked: &mut Vec<Range<usize>>) {
    // The name ends at the separator, or before spaces, a quote or an
    // escaped quote just before it.
    let mut name_end = at;
    while name_end > 0 && bytes[name_end - 1] == b' ' {
        name_end -= 1;
    }
    if name_end > 0 && matches!(bytes[name_end - 1], b'"' | b'\'') {
        name_end -= 1;
        if name_end > 0 && bytes[name_end - 1] == b'\\' {
            name_end -= 1;
        }
    }
    let name_start = bytes[..name_end]
        .iter()
        .rposition(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
        .map_or(0, |i| i + 1);
    // Names are ASCII, so the slice is a whole string.
    let name = std::str::from_utf8(&bytes[name_start..name_end]).unwrap_or_default();
    let query_credential = || {
        bytes[at] == b'='
            && name_start > 0
            && matches!(bytes[name_start - 1], b'?' | b'&')
            && QUERY_WORDS
                .iter()
                .any(|word| name.eq_ignore_ascii_case(word))
    };
    if name.is_empty() || !(is_sensitive_name(name) || query_credential()) {
        return;
    }
    let mut start = at + 1;
    while bytes.get(start) == Some(&b' ') {
        start += 1;
    }
    // Wrappers' names before a quoted value: `Some("…")`, serde_json's
    // `String("…")`, `Some(Password("…"))`.
    let unwrapped = start;
    for _ in 0..3 {
        let word = bytes[start..]
            .iter()
            .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
            .count();
        if word == 0 || !bytes[start].is_ascii_uppercase() || bytes.get(start + word) != Some(&b'(')
        {
            break;
        }
        start += word + 1;
    }
    if !matches!(bytes.get(start), Some(b'"' | b'\'' | b'\\')) {
        start = unwrapped;
    }
    if bytes[start..].starts_with(b"\\\"") {
        // `\"…\"`: a quoted value inside a quoted string.
        let value = start + 2;
        let end = bytes[value..]
            .windows(2)
            .position(|pair| pair == b"\\\"")
            .map_or(bytes.len(), |i| value + i);
        if end > value {
            masked.push(value..end);
        }
    } else if let Some(&quote @ (b'"' | b'\'')) = bytes.get(start) {
        let value = start + 1;
        let end = quoted_end(bytes, value, quote);
        if end > value {
            masked.push(value..end);
        }
    } else if bytes[at] == b'=' {
        let mut end = unquoted_end(bytes, start);
        // `authorization=Bearer …`: the scheme stays, the credential after
        // it goes.
        if is_authorization(name)
            && AUTH_SCHEMES
                .iter()
                .any(|scheme| bytes[start..end].eq_ignore_ascii_case(scheme.as_bytes()))
            && bytes.get(end) == Some(&b' ')
        {
            start = end + 1;
            end = unquoted_end(bytes, start);
        }
        if end > start {
            masked.push(start..end);
        }
    }
    // A `:` with a value that is not quoted is prose ("token: expired"),
    // or a header whose scheme `scheme_credential` finds.
}

/// Whether `name` is an `Authorization` header's, in any case.
fn is_authorization(name: &str) -> bool {
    name.len() >= "authorization".len()
        && name.as_bytes()[name.len() - "authorization".len()..]
            .eq_ignore_ascii_case(b"authorization")
}

/// Where a quoted value that starts at `start` ends: at its closing quote,
/// stepping over escaped characters, or at the end of the text.
fn quoted_end(bytes: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b if b == quote => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Where a value that is not quoted, starting at `start`, ends. A colon
/// ends it only before a space or the end (`api_key=…: refused`); inside,
/// it may be part of the credential.
fn unquoted_end(bytes: &[u8], start: usize) -> usize {
    (start..bytes.len())
        .find(|&i| {
            ends_value(bytes[i])
                || (bytes[i] == b':' && bytes.get(i + 1).is_none_or(u8::is_ascii_whitespace))
        })
        .unwrap_or(bytes.len())
}

/// The credential after an `Authorization` scheme whose space is at `at`:
/// `Bearer eyJhbGci…`, `Basic dXNlcjpwYXNz`. Only a word that looks like
/// one counts: eight characters or more, with a digit, a capital after the
/// first letter, or one of `-._~+/`, and `=` only at its end; so prose keeps
/// its words ("basic authentication", "Basic connectivity").
fn scheme_credential(bytes: &[u8], at: usize, masked: &mut Vec<Range<usize>>) {
    // Most spaces follow other words: only one ending like `bearer` or
    // `basic` is looked at further.
    if at < "basic".len() || !matches!(bytes[at - 1].to_ascii_lowercase(), b'r' | b'c') {
        return;
    }
    let word_start = bytes[..at]
        .iter()
        .rposition(|b| !b.is_ascii_alphabetic())
        .map_or(0, |i| i + 1);
    let word = &bytes[word_start..at];
    if !(word.eq_ignore_ascii_case(b"bearer") || word.eq_ignore_ascii_case(b"basic")) {
        return;
    }
    let start = at + 1;
    let end = bytes[start..]
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || b"-._~+/=".contains(&b)))
        .map_or(bytes.len(), |i| start + i);
    let credential = &bytes[start..end];
    // `=` only as base64's padding at the end: `expires_in=3600` after
    // `token_type=Bearer` is the next pair, not a token.
    let unpadded = credential.len() - credential.iter().rev().take_while(|&&b| b == b'=').count();
    let looks_like_one = !credential[..unpadded].contains(&b'=')
        && credential.iter().enumerate().any(|(i, &b)| {
            b.is_ascii_digit() || b"-._~+/".contains(&b) || (i > 0 && b.is_ascii_uppercase())
        });
    if credential.len() >= 8 && looks_like_one {
        masked.push(start..end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_part_is_found_wherever_it_is_in_a_name() {
        for part in SENSITIVE {
            assert!(is_sensitive_name(part), "{part}");
            assert!(
                is_sensitive_name(&format!("X-{}-1", part.to_uppercase().replace('_', "-"))),
                "{part}"
            );
        }
        assert!(!is_sensitive_name("message"));
        assert!(!is_sensitive_name(""));
    }

    #[test]
    fn a_credentials_properties_and_token_counts_are_not_credentials() {
        for name in [
            "token_count",
            "TOKEN_TYPE",
            "token-ttl",
            "access_token_expires_in",
            "password_file",
            "secret_name",
            "oauth.token_endpoint",
            "token_ttl_seconds",
            "tokenType",
            "promptTokenCount",
            "tokens_used_count",
            "tokens_used",
            "max_tokens",
            "MAX_NEW_TOKENS",
            "maxTokens",
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "tokenizer",
            "tokenization",
        ] {
            assert!(!is_sensitive_name(name), "{name}");
        }
        for name in [
            "token",
            "tokens",
            "api_tokens",
            "refreshTokens",
            "access_token",
            "secret_id",
            "client_secret",
            "passwordhash",
            "token_value",
            "secret_token_count",
            "token_",
            "_tokens",
            "new_tokens",
            "cached_tokens",
            "TokensRemaining",
            "password_file_contents",
            "secretNameAndValue",
            "bot_token_url",
            "input_api_tokens",
            "output.webhook_tokens",
            "OUTPUT_SINK_AUTH_TOKENS",
            "max_age.refresh_tokens",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn short_credential_names_count_whole_or_as_the_last_word() {
        for name in [
            "sig",
            "X-Amz-Signature",
            "x-goog-signature",
            "xAmzSignature",
            "Pwd",
            "db.pass",
            "jwt",
            "session",
            "JSESSIONID",
            "php_sessionid",
            "Cookie",
            "set-cookie",
            "PHPSESSID",
            "connect.sid",
            "session_id",
            "X-Session-Id",
            "sessionId",
            "x509Signature",
        ] {
            assert!(is_sensitive_name(name), "{name}");
        }
        for name in [
            "signal",
            "signature_version",
            "passenger",
            "session_count",
            "keyboard",
            "primary_key",
            "cache_key",
            "oauth",
            "author",
            "cookies_enabled",
            // A flag's or a setting's key, an author: too common to mask.
            "key",
            "auth",
            "id",
            "user_id",
            "session_id_count",
            "ssid",
            "consider",
            "AccountSid",
            "ORACLE_SID",
        ] {
            assert!(!is_sensitive_name(name), "{name}");
        }
    }

    #[test]
    fn key_and_auth_are_credentials_as_query_parameters_only() {
        assert_eq!(
            redact_secrets("GET https://maps.example/v1?key=AIza123&q=x failed"),
            "GET https://maps.example/v1?key=[REDACTED]&q=x failed"
        );
        assert_eq!(
            redact_secrets("https://app.example/a.json?print=pretty&auth=fb-secret"),
            "https://app.example/a.json?print=pretty&auth=[REDACTED]"
        );
        // Elsewhere they name flags and modes.
        for text in ["flag key=new-checkout", "auth=none", "monkey=1&donkey=2"] {
            assert_eq!(redact_secrets(text), text);
        }
    }

    #[test]
    fn signed_urls_and_connection_strings_lose_their_signatures() {
        let azure =
            "GET https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sig=AbCdEf%2B1 failed";
        let s3 = "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=0a1b2c3d";
        let odbc = "Server=db;Uid=sa;Pwd=Hunter2;Database=app";
        for (text, secret) in [(azure, "AbCdEf"), (s3, "0a1b2c3d"), (odbc, "Hunter2")] {
            let masked = redact_secrets(text);
            assert!(!masked.contains(secret), "{masked}");
            assert!(masked.contains(REDACTED), "{masked}");
        }
    }

    #[test]
    fn values_of_a_credentials_properties_are_kept() {
        for text in [
            "max_tokens=4096 temperature=0.2",
            "token_type=Bearer expires_in=3600",
            "password_file=/run/secrets/db",
        ] {
            assert_eq!(redact_secrets(text), text);
        }
        assert_eq!(
            redact_secrets("api_tokens=t-1 max_tokens=5"),
            "api_tokens=[REDACTED] max_tokens=5"
        );
        // What such a value quotes is still looked into.
        assert_eq!(
            redact_secrets("token_endpoint=https://idp/cb?token=t-2&x=1"),
            "token_endpoint=https://idp/cb?token=[REDACTED]&x=1"
        );
    }

    #[test]
    fn a_urls_password_is_masked_and_its_user_and_host_kept() {
        assert_eq!(
            redact_secrets("postgres://app:hunter2@db:5432/accounts"),
            "postgres://app:[REDACTED]@db:5432/accounts"
        );
    }

    #[test]
    fn every_url_of_a_message_is_masked_not_only_the_first() {
        assert_eq!(
            redact_secrets("primary redis://:one@a/0 failed, replica redis://u:two@b/0 too"),
            "primary redis://:[REDACTED]@a/0 failed, replica redis://u:[REDACTED]@b/0 too"
        );
    }

    #[test]
    fn a_url_with_a_user_and_no_password_is_left_alone() {
        let text = "postgres://app@db/accounts and sqlite://data/a.db";
        assert!(matches!(redact_secrets(text), Cow::Borrowed(_)));
    }

    #[test]
    fn sensitive_query_parameters_are_masked_and_others_kept() {
        assert_eq!(
            redact_secrets("GET https://h/p?page=2&access_token=abc.def&sig=x&sign=in"),
            "GET https://h/p?page=2&access_token=[REDACTED]&sig=[REDACTED]&sign=in"
        );
    }

    #[test]
    fn a_colon_ends_a_value_before_a_space_and_not_inside_it() {
        assert_eq!(
            redact_secrets("token=ab:cd: refused"),
            "token=[REDACTED]: refused"
        );
    }

    #[test]
    fn a_key_value_connection_string_keeps_all_but_its_password() {
        assert_eq!(
            redact_secrets("host=db user=app password=hunter2 dbname=accounts"),
            "host=db user=app password=[REDACTED] dbname=accounts"
        );
    }

    #[test]
    fn quoted_values_of_json_and_debug_output_are_masked_inside_their_quotes() {
        assert_eq!(
            redact_secrets(r#"{"user":"app","api_key":"k\"1","n":1}"#),
            r#"{"user":"app","api_key":"[REDACTED]","n":1}"#
        );
        assert_eq!(
            redact_secrets(r#"Options { host: "db", password: Some("hunter2") }"#),
            r#"Options { host: "db", password: Some("[REDACTED]") }"#
        );
        assert_eq!(
            redact_secrets(r#"Object {"token": String("abc")}"#),
            r#"Object {"token": String("[REDACTED]")}"#
        );
    }

    #[test]
    fn authorization_credentials_are_masked_and_their_scheme_kept() {
        assert_eq!(
            redact_secrets("rejected Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig"),
            "rejected Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            redact_secrets("authorization=Basic dXNlcjpwYXNz"),
            "authorization=Basic [REDACTED]"
        );
    }

    #[test]
    fn prose_about_credentials_is_left_alone() {
        for text in [
            "password authentication failed for user \"app\"",
            "token: expired",
            "basic checks passed",
            "using basic authentication",
            "Basic connectivity check passed",
            "a Bearer credential is missing",
            "the secret store answered 503",
            "dsn://example is not a DSN",
        ] {
            assert_eq!(redact_secrets(text), text);
        }
    }

    #[test]
    fn escaped_quotes_of_json_inside_a_string_are_quotes_too() {
        assert_eq!(
            redact_secrets(r#"body: "{\"access_token\":\"abc123\",\"n\":1}""#),
            r#"body: "{\"access_token\":\"[REDACTED]\",\"n\":1}""#
        );
        assert_eq!(
            redact_secrets(r#"password=\"hunter2\""#),
            r#"password=\"[REDACTED]\""#
        );
    }

    #[test]
    fn spaces_around_the_separator_and_nested_wrappers_still_lead_to_the_value() {
        assert_eq!(
            redact_secrets("host = db password = hunter2 port = 5432"),
            "host = db password = [REDACTED] port = 5432"
        );
        assert_eq!(
            redact_secrets(r#"{"password" : "x1"}"#),
            r#"{"password" : "[REDACTED]"}"#
        );
        assert_eq!(
            redact_secrets(r#"Config { password: Some(Password("hunter2")) }"#),
            r#"Config { password: Some(Password("[REDACTED]")) }"#
        );
        // A lower-case word before `(` is the value's, not a wrapper.
        assert_eq!(
            redact_secrets("password=abc(def) x"),
            "password=[REDACTED]) x"
        );
    }

    #[test]
    fn a_url_password_may_hold_characters_that_end_other_values() {
        assert_eq!(
            redact_secrets("amqp://user:Tr0ub4dor&3;x@rabbit/vhost"),
            "amqp://user:[REDACTED]@rabbit/vhost"
        );
    }

    #[test]
    fn a_separator_inside_a_masked_value_neither_splits_nor_extends_it() {
        assert_eq!(
            redact_secrets("redis://u:token=abc@cache:6379 refused"),
            "redis://u:[REDACTED]@cache:6379 refused"
        );
        assert_eq!(redact_secrets("token=a=b=c next"), "token=[REDACTED] next");
        // One pass: a long run of separators takes no longer than its
        // length.
        let long = "token=".repeat(50_000);
        assert_eq!(redact_secrets(&long), "token=[REDACTED]");
    }

    #[test]
    fn an_http_user_without_a_password_is_a_token() {
        assert_eq!(
            redact_secrets("cloning https://ghp_abc123@github.com/org/repo failed"),
            "cloning https://[REDACTED]@github.com/org/repo failed"
        );
        assert_eq!(
            redact_secrets("postgres://app@db/accounts"),
            "postgres://app@db/accounts"
        );
    }

    #[test]
    fn only_authorization_names_keep_their_scheme_and_mask_the_word_after() {
        assert_eq!(
            redact_secrets("access_token=Bearer expires_in=3600"),
            "access_token=[REDACTED] expires_in=3600"
        );
    }

    #[test]
    fn text_around_a_mask_keeps_its_multibyte_characters() {
        assert_eq!(
            redact_secrets("échec: password=mötley; ünd"),
            "échec: password=[REDACTED]; ünd"
        );
    }

    #[test]
    fn an_empty_value_and_a_value_at_the_end_are_handled() {
        assert_eq!(redact_secrets("password="), "password=");
        assert_eq!(
            redact_secrets("a token=\"unterminated"),
            "a token=\"[REDACTED]"
        );
        assert_eq!(redact_secrets("x:"), "x:");
    }
}
