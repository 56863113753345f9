//! Rewriting a TOML flag file without losing what a person wrote in it:
//! comments, blank lines, the order of keys and the layout of tables stay
//! where the new content leaves them.
//!
//! The store renders its whole state; [`keep_layout`] carries that
//! rendering over into the file's current text, key by key. Tables and
//! values that did not change keep their text; changed values keep the
//! comments around them; entries gone from the state leave with the
//! comments above them; new ones are added in the store's own layout.

use std::str::FromStr;

use toml_edit::{ArrayOfTables, DocumentMut, Item, Table, TableLike, Value};

/// `fresh` (the store's own rendering of its state) laid out as `previous`
/// (the file's current text) where they agree. `None` when `previous` is
/// not TOML, or when the result would not read back as `fresh` does: the
/// caller then writes `fresh` as it is, and loses comments rather than
/// content.
pub(super) fn keep_layout(previous: &str, fresh: &str) -> Option<String> {
    let mut document = DocumentMut::from_str(previous).ok()?;
    let target = DocumentMut::from_str(fresh).ok()?;
    patch_table(document.as_table_mut(), target.as_table());
    let text = document.to_string();
    // What the file will say must be what the store means.
    let written = toml::from_str::<toml::Table>(&text).ok()?;
    let meant = toml::from_str::<toml::Table>(fresh).ok()?;
    (written == meant).then_some(text)
}

/// Makes `old` hold what `new` holds, keeping `old`'s text where it can.
fn patch_table(old: &mut dyn TableLike, new: &dyn TableLike) {
    let gone: Vec<String> = old
        .iter()
        .filter(|(key, _)| !new.contains_key(key))
        .map(|(key, _)| key.to_owned())
        .collect();
    for key in gone {
        old.remove(&key);
    }
    for (key, item) in new.iter() {
        match old.get_mut(key) {
            Some(existing) => patch_item(existing, item),
            None => {
                old.insert(key, fresh_item(item));
            }
        }
    }
}

fn patch_item(old: &mut Item, new: &Item) {
    if let (Item::Table(old_table), Some(new_table)) = (&mut *old, new.as_table_like()) {
        let headless = old_table.is_implicit();
        patch_table(old_table, new_table);
        if headless && old_table.iter().any(|(_, item)| item.is_value()) {
            give_header(old_table);
        }
        return;
    }
    if let (Some(old_table), Some(new_table)) = (old.as_table_like_mut(), new.as_table_like()) {
        return patch_table(old_table, new_table);
    }
    match (&mut *old, new) {
        (Item::ArrayOfTables(old_tables), Item::ArrayOfTables(new_tables)) => {
            // The audit log only grows: entries in common keep their text.
            while old_tables.len() > new_tables.len() {
                old_tables.remove(old_tables.len() - 1);
            }
            for (index, table) in new_tables.iter().enumerate() {
                match old_tables.get_mut(index) {
                    Some(existing) => patch_table(existing, table),
                    None => old_tables.push(fresh_table(table)),
                }
            }
        }
        // Written by hand as an array of inline tables (`rules = [{ … }]`):
        // it stays one.
        (Item::Value(old_value @ Value::Array(_)), Item::ArrayOfTables(new_tables)) => {
            patch_value(old_value, &Value::Array(new_tables.clone().into_array()));
        }
        (Item::Value(old_value), Item::Value(new_value)) => patch_value(old_value, new_value),
        (old, new) => *old = fresh_item(new),
    }
}

/// Replaces `old` by `new` unless they mean the same; the comments before
/// and after the value stay with it.
fn patch_value(old: &mut Value, new: &Value) {
    if !same(old, new) {
        let decor = old.decor().clone();
        *old = new.clone();
        *old.decor_mut() = decor;
    }
}

/// Whether two values mean the same, however each is laid out.
fn same(a: &Value, b: &Value) -> bool {
    let read = |value: &Value| {
        let mut value = value.clone();
        value.decor_mut().clear();
        toml::from_str::<toml::Table>(&format!("v = {value}")).ok()
    };
    match (read(a), read(b)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// A table that had no header of its own (`[flags."a".definition]` alone
/// makes `flags."a"` implicit) and now holds values: its header goes where
/// its first sub-table's was, with the comments above it.
fn give_header(table: &mut Table) {
    table.set_implicit(false);
    let first = table.iter_mut().find_map(|(_, item)| {
        item.as_table_mut()
            .filter(|child| child.position().is_some())
    });
    if let Some(child) = first {
        let position = child.position();
        let prefix = child.decor().prefix().cloned();
        child.decor_mut().set_prefix("\n");
        if let Some(position) = position {
            table.set_position(position);
        }
        if let Some(prefix) = prefix {
            table.decor_mut().set_prefix(prefix);
        }
    }
}

/// A copy of `item` with no position of another document: new tables are
/// written after the ones they follow in the map.
fn fresh_item(item: &Item) -> Item {
    match item {
        Item::Table(table) => Item::Table(fresh_table(table)),
        Item::ArrayOfTables(tables) => {
            let mut copy = ArrayOfTables::new();
            for table in tables.iter() {
                copy.push(fresh_table(table));
            }
            Item::ArrayOfTables(copy)
        }
        other => other.clone(),
    }
}

fn fresh_table(table: &Table) -> Table {
    let mut copy = Table::new();
    copy.set_implicit(table.is_implicit());
    for (key, item) in table.iter() {
        copy.insert(key, fresh_item(item));
    }
    copy
}

#[cfg(test)]
mod tests {
    use super::keep_layout;

    const PREVIOUS: &str = r#"# Flags of the checkout service. Ask #checkout before changing one.

# Shouting greets people louder; off until the campaign.
[flags."greeting.shout"]
version = 1

[flags."greeting.shout".definition]
key = "greeting.shout"
type = "bool"
default_variant = "off"
enabled = true # on for the demo
kind = "release"

[flags."greeting.shout".definition.variants]
off = false
on = true

# Old banner, to be removed after the launch.
[flags."banner.old"]
version = 3

[flags."banner.old".definition]
key = "banner.old"
type = "bool"
default_variant = "off"
enabled = false
kind = "release"

[flags."banner.old".definition.variants]
off = false
on = true
"#;

    /// What the store renders after killing `greeting.shout`, deleting
    /// `banner.old` and creating `search.fast`, with their audit entries.
    const FRESH: &str = r#"[flags."greeting.shout"]
version = 2

[flags."greeting.shout".definition]
key = "greeting.shout"
type = "bool"
default_variant = "off"
enabled = false
kind = "release"

[flags."greeting.shout".definition.variants]
off = false
on = true

[flags."search.fast"]
version = 1

[flags."search.fast".definition]
key = "search.fast"
type = "bool"
default_variant = "off"
enabled = true
kind = "ops"

[flags."search.fast".definition.variants]
off = false
on = true

[[audit]]
key = "greeting.shout"
version = 2
action = "kill"
actor = "alice"
reason = "errors up"
at = "2030-01-31T09:30:00.123Z"
"#;

    #[test]
    fn comments_stay_where_the_content_stays() {
        let written = keep_layout(PREVIOUS, FRESH).unwrap();
        // Kept: the file's header, the comment above a flag still there,
        // and the comment after a value that changed.
        assert!(
            written.starts_with("# Flags of the checkout service."),
            "{written}"
        );
        assert!(
            written.contains("# Shouting greets people louder"),
            "{written}"
        );
        assert!(
            written.contains("enabled = false # on for the demo"),
            "{written}"
        );
        // Gone with its flag.
        assert!(!written.contains("Old banner"), "{written}");
        assert!(!written.contains("banner.old"), "{written}");
        // The new flag comes after the one it follows, before the log.
        let shout = written.find("[flags.\"greeting.shout\"]").unwrap();
        let fast = written.find("[flags.\"search.fast\"]").unwrap();
        let audit = written.find("[[audit]]").unwrap();
        assert!(shout < fast && fast < audit, "{written}");
        // And it reads back as the store's own rendering.
        assert_eq!(
            toml::from_str::<toml::Table>(&written).unwrap(),
            toml::from_str::<toml::Table>(FRESH).unwrap()
        );
    }

    #[test]
    fn hand_written_inline_tables_and_entries_of_the_log_keep_their_text() {
        let previous = format!(
            "{}\n# The log starts here.\n[[audit]]\nkey = \"greeting.shout\" # first\nversion = 1\naction = \"create\"\nactor = \"alice\"\nreason = \"launch\"\nat = \"2030-01-30T09:30:00.000Z\"\n",
            PREVIOUS.replace(
                "\n[flags.\"greeting.shout\".definition.variants]\noff = false\non = true\n",
                ""
            )
            .replace(
                "kind = \"release\"\n\n# Old banner",
                "kind = \"release\"\nvariants = { off = false, on = true } # both\n\n# Old banner"
            )
        );
        let fresh = FRESH.replace(
            "[[audit]]",
            "[[audit]]\nkey = \"greeting.shout\"\nversion = 1\naction = \"create\"\nactor = \"alice\"\nreason = \"launch\"\nat = \"2030-01-30T09:30:00.000Z\"\n\n[[audit]]",
        );
        let written = keep_layout(&previous, &fresh).unwrap();
        assert!(
            written.contains("variants = { off = false, on = true } # both"),
            "{written}"
        );
        assert!(written.contains("# The log starts here."), "{written}");
        assert!(
            written.contains("key = \"greeting.shout\" # first"),
            "{written}"
        );
        assert_eq!(written.matches("[[audit]]").count(), 2, "{written}");
        assert_eq!(
            toml::from_str::<toml::Table>(&written).unwrap(),
            toml::from_str::<toml::Table>(&fresh).unwrap()
        );
    }

    #[test]
    fn text_that_is_not_toml_gives_no_layout_to_keep() {
        assert_eq!(keep_layout("[flags\nbroken", FRESH), None);
    }
}
