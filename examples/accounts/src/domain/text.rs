//! Characters that text fields refuse beyond control characters.

/// Whether `c` is invisible or turns the direction of the text around it:
/// the soft hyphen, zero-width space, word joiner, byte-order mark, the
/// bidirectional marks, embeddings, overrides and isolates. Such a
/// character makes two strings that look the same differ (a second
/// account for `ann@example.com`, an invisible name) or a string read
/// backwards (`U+202E`). The zero-width joiner and non-joiner are not
/// among them: Persian and Indic writing and emoji sequences need them.
pub(crate) fn is_invisible_or_bidi(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{061C}'
            | '\u{180E}'
            | '\u{200B}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
            | '\u{FFF9}'..='\u{FFFB}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_direction_characters_are_recognised() {
        for c in ['\u{200B}', '\u{202E}', '\u{2066}', '\u{FEFF}', '\u{00AD}'] {
            assert!(is_invisible_or_bidi(c), "{c:?}");
        }
    }

    #[test]
    fn letters_and_the_joiners_scripts_need_are_not() {
        for c in ['a', 'é', 'ж', '李', '\u{200C}', '\u{200D}', ' '] {
            assert!(!is_invisible_or_bidi(c), "{c:?}");
        }
    }
}
