//! The file store through the public API: changes that survive a restart,
//! JSON and TOML, hand edits (good, malformed, invalid), two stores on one
//! file, and fields a newer release wrote.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::fs;
use std::path::Path;
use std::time::Duration;

use opsready_flags::{
    Condition, ErrorKind, EvaluationContext, FileStore, Flag, Flags, Reason, Rule, Store,
};
use serde_json::{Value, json};
use tokio::time::Instant;

/// Short, so that tests pick up edits quickly.
const POLL: Duration = Duration::from_millis(20);

/// Generous, for a loaded machine; a passing test waits far less.
const DEADLINE: Duration = Duration::from_secs(10);

fn pro() -> EvaluationContext {
    EvaluationContext::new()
        .targeting_key("user-1")
        .attribute("plan", "pro")
}

/// Waits until `condition` holds, failing after [`DEADLINE`].
async fn eventually(what: &str, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Asserts that `condition` holds for a few polling intervals: long
/// enough for the store to have polled a change several times.
async fn throughout(what: &str, mut condition: impl FnMut() -> bool) {
    for _ in 0..10 {
        assert!(condition(), "{what}");
        tokio::time::sleep(POLL).await;
    }
    assert!(condition(), "{what}");
}

async fn open(path: &Path) -> FileStore {
    FileStore::open_with_poll(path, POLL).await.unwrap()
}

fn is_toml(path: &Path) -> bool {
    path.extension()
        .is_some_and(|extension| extension == "toml")
}

/// `text`, in the format of `path`, as JSON.
fn parse(path: &Path, text: &str) -> Value {
    if is_toml(path) {
        let value: toml::Value = toml::from_str(text).unwrap();
        serde_json::to_value(value).unwrap()
    } else {
        serde_json::from_str(text).unwrap()
    }
}

/// The file as JSON, whatever its format.
fn read(path: &Path) -> Value {
    parse(path, &fs::read_to_string(path).unwrap())
}

/// `text` edited by `change`, in the format of `path`.
fn edited(path: &Path, text: &str, change: impl FnOnce(&mut Value)) -> String {
    let mut value = parse(path, text);
    change(&mut value);
    if is_toml(path) {
        toml::to_string(&value).unwrap()
    } else {
        serde_json::to_string_pretty(&value).unwrap()
    }
}

/// Edits the file by hand.
fn edit(path: &Path, change: impl FnOnce(&mut Value)) {
    let text = edited(path, &fs::read_to_string(path).unwrap(), change);
    fs::write(path, text).unwrap();
}

/// Flags followed in `dir`'s `flags.{extension}`, with `greeting.shout`
/// created by alice and on for everyone.
async fn shouting(dir: &Path, extension: &str) -> (std::path::PathBuf, Flags) {
    let path = dir.join(format!("flags.{extension}"));
    let flags = Flags::new(open(&path).await).await.unwrap();
    tokio::spawn(flags.follow());
    let flag = Flag::boolean("greeting.shout").rule(Rule::new("on"));
    flags.create(flag, "alice", "launch").await.unwrap();
    assert!(flags.bool_value("greeting.shout", &pro(), false));
    (path, flags)
}

fn summary(history: &[opsready_flags::AuditEntry]) -> Vec<(u64, &str, &str, &str)> {
    history
        .iter()
        .map(|entry| {
            (
                entry.version,
                entry.action.as_str(),
                entry.actor.as_str(),
                entry.reason.as_str(),
            )
        })
        .collect()
}

#[tokio::test]
async fn changes_through_flags_survive_a_restart_in_json_and_toml() {
    for extension in ["json", "toml"] {
        // Arrange: a file in a directory that does not exist yet.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join(format!("flags.{extension}"));
        let flags = Flags::new(open(&path).await).await.unwrap();
        assert!(path.exists(), "{extension}: the file is created");
        assert!(flags.list().is_empty());

        // Act: create, replace, kill, roll back; then restart.
        let v1 = Flag::boolean("greeting.shout")
            .rule(Rule::new("on").when(Condition::equals("plan", "pro")));
        flags.create(v1.clone(), "alice", "launch").await.unwrap();
        let v2 = v1.clone().description("Shout the greeting");
        flags
            .replace("greeting.shout", v2.clone(), 1, "bob", "describe it")
            .await
            .unwrap();
        flags
            .kill("greeting.shout", "carol", "too loud")
            .await
            .unwrap();
        flags
            .rollback("greeting.shout", None, "carol", "fixed")
            .await
            .unwrap();
        drop(flags);
        let flags = Flags::new(open(&path).await).await.unwrap();

        // Assert: versions, definitions and history are all there.
        let stored = flags.get("greeting.shout").unwrap();
        assert_eq!(stored.version, 4, "{extension}");
        assert_eq!(stored.flag, v2, "{extension}");
        let details = flags.bool_details("greeting.shout", &pro(), false);
        assert!(details.value, "{extension}");
        assert_eq!(details.reason, Reason::TargetingMatch);
        let history = flags.history("greeting.shout").await.unwrap();
        assert_eq!(
            summary(&history),
            [
                (1, "create", "alice", "launch"),
                (2, "update", "bob", "describe it"),
                (3, "kill", "carol", "too loud"),
                (4, "rollback", "carol", "fixed"),
            ],
            "{extension}"
        );
        assert_eq!(history[3].restores, Some(2));
        assert_eq!(history[0].before, None);
        assert_eq!(history[1].before.as_ref(), Some(&v1));

        // The file: live flags first, by key, then the audit log.
        let file = read(&path);
        assert_eq!(file["flags"]["greeting.shout"]["version"], 4);
        assert_eq!(
            file["flags"]["greeting.shout"]["definition"]["description"],
            "Shout the greeting"
        );
        assert_eq!(file["audit"].as_array().unwrap().len(), 4);
        assert_eq!(file["audit"][2]["action"], "kill");
    }
}

#[tokio::test]
async fn the_generic_opener_opens_a_file_and_refuses_other_extensions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let store = opsready_flags::open(&format!("file://{}", path.display()))
        .await
        .unwrap();
    assert!(store.load().await.unwrap().is_empty());
    assert!(path.exists());

    let error = FileStore::open(dir.path().join("flags.yaml"))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Backend);
    assert!(error.to_string().contains("`.json` or `.toml`"), "{error}");
    assert!(!dir.path().join("flags.yaml").exists());
}

#[tokio::test]
async fn a_hand_edit_is_followed_and_recorded_as_a_change_by_the_file() {
    for extension in ["json", "toml"] {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let (path, flags) = shouting(dir.path(), extension).await;

        // Act: switch it off in an editor.
        edit(&path, |file| {
            file["flags"]["greeting.shout"]["definition"]["enabled"] = json!(false);
        });

        // Assert
        eventually("the edit is followed", async || {
            !flags.bool_value("greeting.shout", &pro(), true)
        })
        .await;
        assert_eq!(flags.get("greeting.shout").unwrap().version, 2);
        let history = flags.history("greeting.shout").await.unwrap();
        assert_eq!(
            summary(&history),
            [
                (1, "create", "alice", "launch"),
                (2, "update", "file", "edited by hand"),
            ],
            "{extension}"
        );
        assert!(history[1].before.as_ref().unwrap().enabled);
        assert!(!history[1].after.as_ref().unwrap().enabled);
        // Recorded in the file too, at once.
        let file = read(&path);
        assert_eq!(file["flags"]["greeting.shout"]["version"], 2);
        assert_eq!(file["audit"][1]["actor"], "file");
    }
}

/// Asserts that `greeting.shout`'s history and the file at `path` hold
/// oncall's kill, version 2, after alice's create.
async fn the_kill_stands(flags: &Flags, path: &Path, extension: &str) {
    let history = flags.history("greeting.shout").await.unwrap();
    assert_eq!(
        summary(&history),
        [
            (1, "create", "alice", "launch"),
            (2, "kill", "oncall", "incident 42"),
        ],
        "{extension}"
    );
    let file = read(path);
    assert_eq!(file["flags"]["greeting.shout"]["version"], 2, "{extension}");
    assert_eq!(
        file["flags"]["greeting.shout"]["definition"]["enabled"], false,
        "{extension}"
    );
}

#[tokio::test]
async fn saving_a_stale_copy_of_the_file_does_not_undo_a_kill_made_since() {
    for extension in ["json", "toml"] {
        // Arrange: an editor opens the file while the flag is on.
        let dir = tempfile::tempdir().unwrap();
        let (path, flags) = shouting(dir.path(), extension).await;
        let in_the_editor = fs::read(&path).unwrap();
        flags
            .kill("greeting.shout", "oncall", "incident 42")
            .await
            .unwrap();

        // Act: the editor saves its copy, from before the kill.
        fs::write(&path, &in_the_editor).unwrap();

        // Assert: the kill stands, and the file says so again.
        eventually("the file holds the kill again", async || {
            read(&path)["audit"].as_array().map(Vec::len) == Some(2)
        })
        .await;
        throughout("the flag stays killed", || {
            !flags.bool_value("greeting.shout", &pro(), true)
        })
        .await;
        the_kill_stands(&flags, &path, extension).await;
    }
}

#[tokio::test]
async fn flags_added_and_removed_by_hand_are_recorded_as_creates_and_deletes() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let flags = Flags::new(open(&path).await).await.unwrap();
    tokio::spawn(flags.follow());
    flags
        .create(Flag::boolean("old"), "alice", "launch")
        .await
        .unwrap();

    // Act: remove one, add another without a version or a key.
    edit(&path, |file| {
        let listed = file["flags"].as_object_mut().unwrap();
        listed.remove("old");
        listed.insert(
            "new".to_owned(),
            json!({ "definition": { "type": "bool", "variants": { "on": true, "off": false }, "default_variant": "on" } }),
        );
    });

    // Assert
    eventually("the edit is followed", async || {
        flags.get("old").is_none() && flags.get("new").is_some()
    })
    .await;
    assert!(flags.bool_value("new", &pro(), false));
    let old = flags.history("old").await.unwrap();
    assert_eq!(summary(&old)[1], (2, "delete", "file", "edited by hand"));
    let new = flags.history("new").await.unwrap();
    assert_eq!(summary(&new), [(1, "create", "file", "edited by hand")]);
}

#[tokio::test]
async fn a_file_written_by_hand_is_opened_and_its_flags_recorded() {
    // Arrange: TOML as an operator would write it, without versions, keys
    // or an audit log, and a bare date.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    fs::write(
        &path,
        r#"
# Search ranking, see SHOP-123.
[flags."search.ranking".definition]
type = "string"
default_variant = "classic"
expires = 2031-03-01
variants = { classic = "bm25", neural = "dense-v2" }
rules = [{ variant = "neural", conditions = [{ attribute = "plan", op = "equals", value = "pro" }] }]
"#,
    )
    .unwrap();

    // Act
    let flags = Flags::new(open(&path).await).await.unwrap();

    // Assert
    assert_eq!(
        &*flags.string_value("search.ranking", &pro(), "x"),
        "dense-v2"
    );
    let history = flags.history("search.ranking").await.unwrap();
    assert_eq!(summary(&history), [(1, "create", "file", "edited by hand")]);
    let file = read(&path);
    assert_eq!(file["flags"]["search.ranking"]["version"], 1);
    assert_eq!(file["audit"][0]["actor"], "file");
}

#[tokio::test]
async fn a_toml_file_keeps_its_comments_through_changes() {
    // Arrange: a file an operator keeps under version control, with notes.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    fs::write(
        &path,
        r#"# Checkout flags. Ask #checkout before changing one.

# The new payment page, ramping up; see SHOP-42.
[flags."checkout.new_page".definition]
type = "bool"
default_variant = "off"
variants = { off = false, on = true }
rules = [{ variant = "on" }]  # everyone, once the ramp is done

# Old banner: delete after the launch.
[flags."banner.old".definition]
type = "bool"
default_variant = "off"
variants = { off = false, on = true }
"#,
    )
    .unwrap();
    let flags = Flags::new(open(&path).await).await.unwrap();

    // Act: a kill, a delete and a create through the store.
    flags
        .kill("checkout.new_page", "alice", "errors up")
        .await
        .unwrap();
    flags.delete("banner.old", "bob", "launched").await.unwrap();
    flags
        .create(Flag::boolean("search.fast"), "carol", "new index")
        .await
        .unwrap();

    // Assert: the notes on what stays are still there; the deleted flag's
    // went with it.
    let text = fs::read_to_string(&path).unwrap();
    assert!(
        text.starts_with("# Checkout flags. Ask #checkout"),
        "{text}"
    );
    assert!(
        text.contains("# The new payment page, ramping up; see SHOP-42."),
        "{text}"
    );
    assert!(text.contains("# everyone, once the ramp is done"), "{text}");
    assert!(!text.contains("Old banner"), "{text}");
    // And the file holds every change: a restart sees them all.
    drop(flags);
    let reopened = Flags::new(open(&path).await).await.unwrap();
    assert!(!reopened.bool_value("checkout.new_page", &pro(), true));
    assert!(reopened.get("banner.old").is_none());
    assert!(reopened.get("search.fast").is_some());
    let history = reopened.history("checkout.new_page").await.unwrap();
    assert_eq!(summary(&history)[1], (2, "kill", "alice", "errors up"));
    assert_eq!(reopened.history("banner.old").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_hand_edit_saved_just_before_a_change_keeps_its_comment_and_its_value() {
    // Arrange: two flags created through the store, then a note above one
    // and the other switched off by hand. The store does not poll, so the
    // change below is what finds the edit.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    let store = FileStore::open_with_poll(&path, Duration::ZERO)
        .await
        .unwrap();
    let flags = Flags::new(store).await.unwrap();
    for key in ["checkout.new_page", "search.fast"] {
        flags
            .create(Flag::boolean(key).rule(Rule::new("on")), "alice", "launch")
            .await
            .unwrap();
    }
    let text = fs::read_to_string(&path).unwrap();
    let header = "[flags.\"search.fast\".definition]";
    let (before, after) = text.split_at(text.find(header).unwrap());
    let edited = before.replacen(
        "[flags.\"checkout.new_page\"]",
        "# Ramping up; see SHOP-42.\n[flags.\"checkout.new_page\"]",
        1,
    ) + &after.replacen("enabled = true", "enabled = false", 1);
    assert!(
        edited.contains("SHOP-42") && edited.contains("enabled = false"),
        "{text}"
    );
    fs::write(&path, &edited).unwrap();

    // Act: a change of the other flag through the store, at once.
    flags
        .kill("checkout.new_page", "bob", "errors up")
        .await
        .unwrap();

    // Assert: the file keeps the note, and holds the hand edit and the kill.
    let text = fs::read_to_string(&path).unwrap();
    assert!(text.contains("# Ramping up; see SHOP-42."), "{text}");
    drop(flags);
    let reopened = Flags::new(open(&path).await).await.unwrap();
    assert!(!reopened.bool_value("checkout.new_page", &pro(), true));
    assert!(!reopened.bool_value("search.fast", &pro(), true));
    let killed = reopened.history("checkout.new_page").await.unwrap();
    assert_eq!(summary(&killed)[1], (2, "kill", "bob", "errors up"));
    let edited = reopened.history("search.fast").await.unwrap();
    assert_eq!(summary(&edited)[1], (2, "update", "file", "edited by hand"));
}

#[tokio::test]
async fn a_malformed_edit_keeps_the_flags_until_it_is_fixed() {
    let broken = [
        ("json", "{\n  \"flags\": {\n    \"a\": nope\n}\n", "line 3"),
        ("toml", "[flags.a]\nversion = = 1\n", "line 2"),
    ];
    for (extension, text, line) in broken {
        // Arrange
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("flags.{extension}"));
        let flags = Flags::new(open(&path).await).await.unwrap();
        tokio::spawn(flags.follow());
        flags
            .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
            .await
            .unwrap();
        let good = fs::read_to_string(&path).unwrap();

        // Act: a typo saved by hand.
        fs::write(&path, text).unwrap();

        // Assert: changes are refused, naming the line, and the edit is not
        // overwritten; the flags stay.
        let error = flags
            .create(Flag::boolean("b"), "bob", "launch")
            .await
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::BadEdit, "{extension}");
        assert!(error.to_string().contains(line), "{extension}: {error}");
        assert_eq!(fs::read_to_string(&path).unwrap(), text);
        throughout("the flags stay", || flags.bool_value("a", &pro(), false)).await;

        // Act: fixed, with a change.
        let fixed = edited(&path, &good, |file| {
            file["flags"]["a"]["definition"]["enabled"] = json!(false);
        });
        fs::write(&path, fixed).unwrap();

        // Assert: picked up, and the flag was never lost meanwhile.
        eventually("the fix is followed", async || {
            assert!(
                flags.get("a").is_some(),
                "{extension}: the flag was cleared"
            );
            !flags.bool_value("a", &pro(), true)
        })
        .await;
        flags
            .create(Flag::boolean("b"), "bob", "launch")
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn an_invalid_definition_edited_by_hand_keeps_the_flags_until_it_is_fixed() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let flags = Flags::new(open(&path).await).await.unwrap();
    tokio::spawn(flags.follow());
    flags
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();

    // Act: a default variant that does not exist.
    edit(&path, |file| {
        file["flags"]["a"]["definition"]["default_variant"] = json!("maybe");
    });

    // Assert
    let error = flags
        .create(Flag::boolean("b"), "bob", "launch")
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadEdit);
    assert!(
        error
            .to_string()
            .contains("/flags/a/definition/default_variant"),
        "{error}"
    );
    throughout("the flags stay", || flags.bool_value("a", &pro(), false)).await;

    // Act: fixed.
    edit(&path, |file| {
        file["flags"]["a"]["definition"]["default_variant"] = json!("on");
        file["flags"]["a"]["definition"]["rules"] = json!([]);
    });

    // Assert
    eventually("the fix is followed", async || {
        assert!(flags.get("a").is_some(), "the flag was cleared");
        flags.get("a").unwrap().flag.default_variant == "on"
    })
    .await;
    assert_eq!(flags.get("a").unwrap().version, 2);
}

/// The files next to `path` that hold a bad edit set aside, oldest first.
fn set_aside(path: &Path) -> Vec<std::path::PathBuf> {
    let prefix = format!("{}.rejected-", path.file_name().unwrap().to_string_lossy());
    let mut found: Vec<_> = fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|found| {
            found
                .file_name()
                .is_some_and(|name| name.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
}

/// Makes a bad edit of the file at a path, given its text.
type BadEdit = fn(&Path, &str) -> String;

#[tokio::test]
async fn a_kill_or_a_rollback_goes_through_a_bad_edit_and_sets_it_aside() {
    // A syntax error in each format, and a definition that parses but is
    // invalid.
    let cases: [(&str, BadEdit); 3] = [
        ("json", |_, _| {
            "{\n  \"flags\": {\n    \"a\": nope\n}\n".to_owned()
        }),
        ("toml", |_, _| "[flags.a]\nversion = = 1\n".to_owned()),
        ("json", |path, good| {
            edited(path, good, |file| {
                file["flags"]["a"]["definition"]["default_variant"] = json!("maybe");
            })
        }),
    ];
    for (extension, bad) in cases {
        // Arrange: `a` on for pro users, `b` alongside, the file readable by
        // its owner only.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("flags.{extension}"));
        let flags = Flags::new(open(&path).await).await.unwrap();
        tokio::spawn(flags.follow());
        flags
            .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
            .await
            .unwrap();
        flags
            .create(Flag::boolean("b"), "alice", "launch")
            .await
            .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        }
        let text = bad(&path, &fs::read_to_string(&path).unwrap());

        // Act: the bad edit, then a kill.
        fs::write(&path, &text).unwrap();
        let killed = flags.kill("a", "bob", "INC-7").await;

        // Assert: the kill stands in memory and on disk, `b` stays, and
        // the edit is kept, byte for byte, with the file's permissions.
        let killed = killed.unwrap_or_else(|error| panic!("{extension}: {error}"));
        assert_eq!(killed.version, 2, "{extension}");
        assert!(!flags.bool_value("a", &pro(), true), "{extension}");
        let file = read(&path);
        assert_eq!(
            file["flags"]["a"]["definition"]["enabled"], false,
            "{extension}"
        );
        assert_eq!(file["flags"]["b"]["version"], 1, "{extension}");
        let aside = set_aside(&path);
        assert_eq!(aside.len(), 1, "{extension}: {aside:?}");
        assert_eq!(fs::read_to_string(&aside[0]).unwrap(), text, "{extension}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(&aside[0]).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{extension}");
        }

        // Act: broken again (the edit made anew on the file as it is now);
        // a create, then a rollback of the kill.
        let text = bad(&path, &fs::read_to_string(&path).unwrap());
        fs::write(&path, &text).unwrap();
        let refused = flags.create(Flag::boolean("c"), "carol", "launch").await;
        let after_refusal = fs::read_to_string(&path).unwrap();
        let rolled_back = flags.rollback_from("a", 2, None, "bob", "fixed").await;

        // Assert: the create is refused and writes nothing; the rollback
        // goes through and sets the second edit aside too.
        let error = refused.map(|_| ()).expect_err(extension);
        assert_eq!(error.kind(), ErrorKind::BadEdit, "{extension}");
        assert!(
            error.to_string().contains("rollback"),
            "{extension}: {error}"
        );
        assert_eq!(after_refusal, text, "{extension}");
        let rolled_back = rolled_back.unwrap_or_else(|error| panic!("{extension}: {error}"));
        assert_eq!(rolled_back.version, 3, "{extension}");
        assert!(flags.bool_value("a", &pro(), false), "{extension}");
        let aside = set_aside(&path);
        assert_eq!(aside.len(), 2, "{extension}: {aside:?}");
        assert_eq!(fs::read_to_string(&aside[1]).unwrap(), text, "{extension}");

        // And after a restart, the history holds the whole incident.
        drop(flags);
        let reopened = Flags::new(open(&path).await).await.unwrap();
        let history = reopened.history("a").await.unwrap();
        assert_eq!(
            summary(&history),
            [
                (1, "create", "alice", "launch"),
                (2, "kill", "bob", "INC-7"),
                (3, "rollback", "bob", "fixed"),
            ],
            "{extension}"
        );
    }
}

/// Flags in `dir`'s `flags.json` through a store that never polls, with
/// `a` created by alice and on for pro users.
async fn unpolled(dir: &Path) -> (std::path::PathBuf, Flags) {
    let path = dir.join("flags.json");
    let store = FileStore::open_with_poll(&path, Duration::ZERO)
        .await
        .unwrap();
    let flags = Flags::new(store).await.unwrap();
    flags
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();
    (path, flags)
}

#[tokio::test]
async fn a_kill_through_a_bad_edit_keeps_what_another_store_wrote_since() {
    // Arrange: two stores on one file; the first never polls, so it has
    // not read what the second writes.
    let dir = tempfile::tempdir().unwrap();
    let (path, first) = unpolled(dir.path()).await;
    let second = Flags::new(open(&path).await).await.unwrap();
    second
        .create(Flag::boolean("b"), "carol", "launch")
        .await
        .unwrap();

    // Act: a bad edit, then a kill through the first store.
    fs::write(&path, "{\"flags\": nope").unwrap();
    let killed = first.kill("a", "bob", "INC-9").await.unwrap();

    // Assert: the second store's flag and its record are still there.
    assert_eq!(killed.version, 2);
    let file = read(&path);
    assert_eq!(file["flags"]["b"]["version"], 1, "{file}");
    assert_eq!(file["flags"]["a"]["definition"]["enabled"], false);
    let records: Vec<(&str, &str)> = file["audit"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| {
            (
                entry["key"].as_str().unwrap(),
                entry["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(records, [("a", "create"), ("b", "create"), ("a", "kill")]);
    assert_eq!(set_aside(&path).len(), 1);
}

#[tokio::test]
async fn a_kill_through_a_bad_edit_of_a_flag_another_store_changed_since_goes_through() {
    // Arrange: the first store never polls; the second changes `a` after
    // the first read it.
    let dir = tempfile::tempdir().unwrap();
    let (path, first) = unpolled(dir.path()).await;
    let second = Flags::new(open(&path).await).await.unwrap();
    let current = second.get("a").unwrap();
    second
        .replace(
            "a",
            current.flag.description("changed by the second"),
            1,
            "carol",
            "describe",
        )
        .await
        .unwrap();

    // Act: a bad edit, then a kill through the first store, which still
    // has version 1.
    fs::write(&path, "{\"flags\": nope").unwrap();
    let killed = first.kill("a", "bob", "INC-12").await;

    // Assert: the kill is based on the second store's version.
    let killed = killed.unwrap();
    assert_eq!(killed.version, 3);
    let file = read(&path);
    assert_eq!(file["flags"]["a"]["definition"]["enabled"], false);
    assert_eq!(
        file["flags"]["a"]["definition"]["description"],
        "changed by the second"
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_kill_through_a_file_made_unreadable_leaves_one_the_store_can_read() {
    use std::os::unix::fs::PermissionsExt as _;

    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let (path, flags) = unpolled(dir.path()).await;

    // Act: a bad edit, its permissions taken away, then a kill.
    fs::write(&path, "{\"flags\": nope").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o000)).unwrap();
    let killed = flags.kill("a", "bob", "INC-13").await;

    // Assert: the new file can be read and written by its owner.
    assert_eq!(killed.unwrap().version, 2);
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o600, 0o600, "{mode:o}");
}

#[tokio::test]
async fn an_edit_still_being_written_when_a_kill_overrides_it_ends_up_set_aside_whole() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let (path, flags) = unpolled(dir.path()).await;
    let edit = edited(&path, &fs::read_to_string(&path).unwrap(), |file| {
        file["flags"]["a"]["definition"]["description"] = json!("edited in place");
    });
    let (head, tail) = edit.split_at(edit.len() / 2);

    // Act: an editor that writes the file in place has written half of it
    // when the kill comes; it then writes the rest.
    let mut editor = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut editor, head.as_bytes()).unwrap();
    let killed = flags.kill("a", "bob", "INC-10").await;
    std::io::Write::write_all(&mut editor, tail.as_bytes()).unwrap();
    drop(editor);

    // Assert: the kill stands, and the edit is whole where it was set
    // aside, not cut off where the kill found it.
    assert_eq!(killed.unwrap().version, 2);
    assert_eq!(read(&path)["flags"]["a"]["definition"]["enabled"], false);
    let aside = set_aside(&path);
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(fs::read_to_string(&aside[0]).unwrap(), edit);
}

#[tokio::test]
async fn a_stale_copy_saved_while_no_store_runs_does_not_undo_a_kill() {
    for extension in ["json", "toml"] {
        // Arrange: an editor opens the file while the flag is on; the flag
        // is killed; the service stops.
        let dir = tempfile::tempdir().unwrap();
        let (path, flags) = shouting(dir.path(), extension).await;
        let in_the_editor = fs::read(&path).unwrap();
        flags
            .kill("greeting.shout", "oncall", "incident 42")
            .await
            .unwrap();
        drop(flags);

        // Act: the editor saves its copy, from before the kill; the service
        // starts again.
        fs::write(&path, &in_the_editor).unwrap();
        let reopened = Flags::new(open(&path).await).await.unwrap();

        // Assert: the kill stands, in memory and in the file.
        assert!(
            !reopened.bool_value("greeting.shout", &pro(), true),
            "{extension}"
        );
        the_kill_stands(&reopened, &path, extension).await;
    }
}

#[tokio::test]
async fn a_hand_edit_of_a_killed_flag_without_enabled_keeps_the_kill() {
    for extension in ["json", "toml"] {
        // Arrange: a killed flag.
        let dir = tempfile::tempdir().unwrap();
        let (path, flags) = shouting(dir.path(), extension).await;
        flags
            .kill("greeting.shout", "oncall", "INC-11")
            .await
            .unwrap();

        // Act: its definition edited by hand, `enabled` left out (copied
        // from elsewhere, say), with a new description.
        edit(&path, |file| {
            let definition = &mut file["flags"]["greeting.shout"]["definition"];
            definition.as_object_mut().unwrap().remove("enabled");
            definition["description"] = json!("shouts");
        });

        // Assert: the edit is taken, the kill stays.
        eventually("the edit is followed", async || {
            flags
                .get("greeting.shout")
                .is_some_and(|stored| stored.flag.description.as_deref() == Some("shouts"))
        })
        .await;
        let stored = flags.get("greeting.shout").unwrap();
        assert!(!stored.flag.enabled, "{extension}");
        assert_eq!(stored.version, 3, "{extension}");
        assert!(
            !flags.bool_value("greeting.shout", &pro(), true),
            "{extension}"
        );

        // Act: `enabled = true` written out.
        edit(&path, |file| {
            file["flags"]["greeting.shout"]["definition"]["enabled"] = json!(true);
        });

        // Assert: that turns it back on.
        eventually("the flag is on again", async || {
            flags.bool_value("greeting.shout", &pro(), false)
        })
        .await;
    }
}

#[tokio::test]
async fn a_malformed_file_is_refused_at_open_with_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    fs::write(&path, "{\n  \"flags\": [\n").unwrap();
    let error = FileStore::open(&path).await.unwrap_err();
    assert_eq!(error.kind(), ErrorKind::BadEdit);
    assert!(error.to_string().contains("line 2"), "{error}");
    assert_eq!(fs::read_to_string(&path).unwrap(), "{\n  \"flags\": [\n");
}

#[tokio::test]
async fn a_file_deleted_while_running_keeps_the_flags_and_is_written_again() {
    // Arrange
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let store = open(&path).await;
    let flags = Flags::new(store.clone()).await.unwrap();
    flags
        .create(Flag::boolean("a"), "alice", "launch")
        .await
        .unwrap();

    // Act
    fs::remove_file(&path).unwrap();
    throughout("the flags stay", || flags.get("a").is_some()).await;
    flags
        .create(Flag::boolean("b"), "alice", "launch")
        .await
        .unwrap();

    // Assert
    let file = read(&path);
    assert_eq!(file["flags"]["a"]["version"], 1);
    assert_eq!(file["flags"]["b"]["version"], 1);
    assert_eq!(store.audit_log().len(), 2);
}

#[tokio::test]
async fn a_second_store_on_the_same_file_follows_the_first_and_writes_after_it() {
    // Arrange: two stores on one file, as two instances would be.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.toml");
    let first = Flags::new(open(&path).await).await.unwrap();
    let second = Flags::new(open(&path).await).await.unwrap();
    tokio::spawn(first.follow());
    tokio::spawn(second.follow());

    // Act
    first
        .create(Flag::boolean("a").rule(Rule::new("on")), "alice", "launch")
        .await
        .unwrap();

    // Assert
    eventually("the second store sees the create", async || {
        second.bool_value("a", &pro(), false)
    })
    .await;

    // Act: the second writes, based on what it polled.
    let current = second.get("a").unwrap();
    second
        .replace(
            "a",
            current.flag.enabled(false),
            current.version,
            "bob",
            "off",
        )
        .await
        .unwrap();

    // Assert: the first sees it; nothing was lost or recorded twice.
    eventually("the first store sees the replace", async || {
        !first.bool_value("a", &pro(), true)
    })
    .await;
    let history = first.history("a").await.unwrap();
    assert_eq!(
        summary(&history),
        [
            (1, "create", "alice", "launch"),
            (2, "update", "bob", "off")
        ]
    );
}

#[tokio::test]
async fn a_stale_write_from_a_second_store_is_a_conflict_not_a_lost_update() {
    // Arrange: the second store does not poll, so it never heard of v2.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let first = Flags::new(open(&path).await).await.unwrap();
    first
        .create(Flag::boolean("a"), "alice", "launch")
        .await
        .unwrap();
    let quiet = FileStore::open_with_poll(&path, Duration::ZERO)
        .await
        .unwrap();
    let second = Flags::new(quiet).await.unwrap();
    first.kill("a", "alice", "stop").await.unwrap();

    // Act
    let error = second
        .replace("a", Flag::boolean("a").owner("bob"), 1, "bob", "own it")
        .await
        .unwrap_err();

    // Assert
    assert_eq!(error.kind(), ErrorKind::Conflict);
    assert_eq!(error.current_version(), Some(2));
    assert_eq!(read(&path)["flags"]["a"]["definition"]["enabled"], false);
}

#[tokio::test]
async fn fields_this_version_does_not_know_survive_in_json_and_toml() {
    for extension in ["json", "toml"] {
        // Arrange: written by a newer release, or by hand.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(format!("flags.{extension}"));
        let definition = json!({
            "key": "checkout.new-flow",
            "type": "bool",
            "variants": { "on": true, "off": false },
            "default_variant": "off",
            "ticket": "SHOP-123",
            "rules": [{
                "variant": "on",
                "name": "pro users",
                "conditions": [{ "attribute": "plan", "op": "equals", "value": "pro", "negate": false }]
            }],
            "rollout": { "variant": "on", "percentage": 5, "guard": { "metric": "http_5xx" } }
        });
        let file =
            json!({ "flags": { "checkout.new-flow": { "version": 1, "definition": definition } } });
        let text = if extension == "toml" {
            toml::to_string(&file).unwrap()
        } else {
            serde_json::to_string_pretty(&file).unwrap()
        };
        fs::write(&path, text).unwrap();

        // Act: this release ramps and kills it, then restarts.
        let flags = Flags::new(open(&path).await).await.unwrap();
        flags
            .ramp("checkout.new-flow", 25.0, "alice", "next stage")
            .await
            .unwrap();
        flags
            .kill("checkout.new-flow", "alice", "incident")
            .await
            .unwrap();
        drop(flags);
        let store = open(&path).await;

        // Assert
        let stored = store.get("checkout.new-flow").await.unwrap().unwrap();
        assert_eq!(stored.version, 3, "{extension}");
        let written = serde_json::to_value(&stored.flag).unwrap();
        assert_eq!(written["ticket"], "SHOP-123", "{extension}");
        assert_eq!(written["rules"][0]["name"], "pro users");
        assert_eq!(written["rules"][0]["conditions"][0]["negate"], false);
        assert_eq!(written["rollout"]["guard"]["metric"], "http_5xx");
        assert_eq!(written["rollout"]["percentage"], 25.0);
        assert_eq!(written["enabled"], false);
        let on_disk = read(&path);
        let live = &on_disk["flags"]["checkout.new-flow"]["definition"];
        assert_eq!(live["ticket"], "SHOP-123", "{extension}");
        assert_eq!(live["rollout"]["guard"]["metric"], "http_5xx");
    }
}
