//! Black-box tests of the flags admin API mounted by `Ops::open_flags`:
//! authentication, `If-Match` (412, 428), invalid definitions (422 with
//! pointers), kill and rollback seen by a handler, history, and the
//! evaluation counter on `/metrics`. Each test has its own ports and store.

// Helpers outside `#[test]` functions unwrap too: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use opsready::flags::{EvaluationContext, Flag, Flags, Rollout};
use opsready::settings::{Loader, Validate};
use opsready::{Ops, Settings};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Default, Deserialize, Serialize)]
struct AppSettings {}

impl Validate for AppSettings {}

const TOKEN: &str = "a-long-enough-admin-token";

fn settings(store: &str, extra: &[(&str, &str)]) -> Settings<AppSettings> {
    let mut vars = vec![
        ("TEST__SERVER__ADDR", "127.0.0.1:0"),
        ("TEST__ADMIN__ADDR", "127.0.0.1:0"),
        ("TEST__ADMIN__TOKEN", TOKEN),
        ("TEST__FLAGS__STORE", store),
    ];
    vars.extend_from_slice(extra);
    let dir = std::env::temp_dir().join("opsready-no-config-here");
    opsready::load(&Loader::new("TEST").config_dir(dir).env(vars)).unwrap()
}

/// A served app whose `/hello` shouts when `greeting.shout` is on.
struct App {
    base: String,
    admin: String,
    client: reqwest::Client,
    /// The service's own handle, for what the admin API does not do.
    flags: Flags,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl App {
    async fn spawn(store: &str) -> Self {
        Self::spawn_with(store, &[]).await
    }

    async fn spawn_with(store: &str, extra: &[(&str, &str)]) -> Self {
        let mut ops = Ops::new(&settings(store, extra));
        let flags = ops
            .open_flags([Flag::boolean("greeting.shout")
                .variant("on", true)
                .variant("off", false)
                .default_variant("off")
                .rollout(Rollout::new("on", 100.0))
                .description("uppercase the greeting")])
            .await
            .unwrap();
        let app = Router::new()
            .route("/hello", get(hello))
            .with_state(flags.clone());
        let server = ops.bind(app).await.unwrap();
        let base = format!("http://{}", server.local_addr());
        let admin = format!("http://{}", server.admin_addr().unwrap());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run_until(async move {
            let _ = stopped.await;
        }));
        Self {
            base,
            admin,
            client: reqwest::Client::new(),
            flags,
            _stop: stop,
        }
    }

    async fn hello(&self) -> String {
        let response = self.client.get(format!("{}/hello", self.base)).send();
        response.await.unwrap().text().await.unwrap()
    }

    fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.admin))
            .bearer_auth(TOKEN)
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (u16, Option<String>, Value) {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let etag = response
            .headers()
            .get("etag")
            .map(|value| value.to_str().unwrap().to_owned());
        let body = response.json().await.unwrap_or(Value::Null);
        (status, etag, body)
    }
}

/// A whole boolean definition, on.
fn on_off_definition() -> Value {
    json!({
        "type": "bool",
        "variants": {"on": true, "off": false},
        "default_variant": "off",
        "enabled": true,
    })
}

async fn hello(State(flags): State<Flags>) -> String {
    let context = EvaluationContext::new().targeting_key("visitor");
    if flags.bool_value("greeting.shout", &context, false) {
        "HELLO".to_owned()
    } else {
        "hello".to_owned()
    }
}

/// The actions of a flag's history, oldest first.
fn actions(history: &Value) -> Vec<&str> {
    history["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect()
}

fn pointers(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|error| error["pointer"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn the_flags_api_needs_the_admin_token() {
    let app = App::spawn("memory:").await;

    let anonymous = app
        .client
        .get(format!("{}/admin/flags", app.admin))
        .send()
        .await
        .unwrap();
    let wrong = app
        .client
        .post(format!("{}/admin/flags/greeting.shout/kill", app.admin))
        .bearer_auth("not-the-token-at-all")
        .json(&json!({"reason": "test"}))
        .send()
        .await
        .unwrap();
    // A method the route does not have is asked for the token first too.
    let probing = app
        .client
        .delete(format!("{}/admin/flags/greeting.shout", app.admin))
        .send()
        .await
        .unwrap();

    assert_eq!(anonymous.status(), 401);
    assert_eq!(wrong.status(), 401);
    assert_eq!(probing.status(), 401);
    assert_eq!(app.hello().await, "HELLO", "nothing was killed");
}

#[tokio::test]
async fn declared_flags_are_listed_and_read_with_their_version_as_etag() {
    let app = App::spawn("memory:").await;

    let (status, _, list) = app
        .send(app.admin(reqwest::Method::GET, "/admin/flags"))
        .await;
    let (read_status, etag, one) = app
        .send(app.admin(reqwest::Method::GET, "/admin/flags/greeting.shout"))
        .await;
    let (missing, _, problem) = app
        .send(app.admin(reqwest::Method::GET, "/admin/flags/no.such"))
        .await;

    assert_eq!(status, 200);
    assert_eq!(list["flags"][0]["flag"]["key"], "greeting.shout", "{list}");
    assert_eq!(read_status, 200);
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(one["version"], 1);
    assert_eq!(one["flag"]["description"], "uppercase the greeting");
    assert_eq!(missing, 404);
    assert_eq!(problem["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_replace_needs_the_current_version_in_if_match() {
    let app = App::spawn("memory:").await;
    let definition = on_off_definition();
    let put = |if_match: Option<&str>| {
        let request = app
            .admin(reqwest::Method::PUT, "/admin/flags/greeting.shout")
            .json(&json!({"reason": "quiet by default", "actor": "alice", "flag": definition}));
        match if_match {
            Some(version) => request.header("if-match", version),
            None => request,
        }
    };

    let (missing, _, required) = app.send(put(None)).await;
    let (stale, _, failed) = app.send(put(Some("\"7\""))).await;
    let (replaced, etag, change) = app.send(put(Some("\"1\""))).await;
    let (again, _, _) = app.send(put(Some("\"1\""))).await;

    assert_eq!(missing, 428);
    assert_eq!(required["code"], "PRECONDITION_REQUIRED");
    assert_eq!(stale, 412);
    assert_eq!(failed["code"], "PRECONDITION_FAILED");
    assert!(
        failed["detail"].as_str().unwrap().contains("version 1"),
        "{failed}"
    );
    assert_eq!(replaced, 200, "{change}");
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(change["change"]["actor"], "alice");
    assert_eq!(change["change"]["before"]["rollout"]["percentage"], 100.0);
    assert_eq!(again, 412, "the same base version cannot win twice");
    assert_eq!(app.hello().await, "hello");
}

#[tokio::test]
async fn a_replace_of_a_flag_deleted_since_it_was_read_fails_its_precondition() {
    let app = App::spawn("memory:").await;
    let definition = on_off_definition();
    let (created, _, _) = app
        .send(
            app.admin(reqwest::Method::PUT, "/admin/flags/gone.soon")
                .json(&json!({"reason": "try it", "actor": "alice", "flag": definition})),
        )
        .await;
    app.flags
        .delete("gone.soon", "bob", "done with it")
        .await
        .unwrap();

    // Alice replaces the version she read: bob's delete is not undone.
    let (status, _, problem) = app
        .send(
            app.admin(reqwest::Method::PUT, "/admin/flags/gone.soon")
                .header("if-match", "\"1\"")
                .json(&json!({"reason": "tweak", "actor": "alice", "flag": definition})),
        )
        .await;

    assert_eq!(created, 201, "{problem}");
    assert_eq!(status, 412, "{problem}");
    assert_eq!(problem["code"], "PRECONDITION_FAILED");
    assert!(
        problem["detail"].as_str().unwrap().contains("not there"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_create_finding_a_flag_another_instance_made_is_a_428_naming_its_version() {
    // Two instances of a service on one store: the second has not read
    // the file since the first created the flag (it polls every 500 ms,
    // and takes a change in on the poll after the one that saw it).
    let dir = tempfile::tempdir().unwrap();
    let store = format!("file://{}", dir.path().join("flags.json").display());
    let (first, second) = (App::spawn(&store).await, App::spawn(&store).await);
    let definition = on_off_definition();
    let create = |app: &App, key: &str| {
        app.admin(reqwest::Method::PUT, &format!("/admin/flags/{key}"))
            .json(&json!({"reason": "new", "flag": definition}))
    };

    // Until the second instance's snapshot is stale when it is asked (a
    // slow machine may let a poll come between the two requests).
    let mut answers = None;
    for attempt in 0..5 {
        let key = format!("made.twice{attempt}");
        let (created, _, _) = first.send(create(&first, &key)).await;
        assert_eq!(created, 201);
        if second.flags.get(&key).is_none() {
            answers = Some(second.send(create(&second, &key)).await);
            break;
        }
    }
    let (status, _, problem) = answers.expect("the second instance was never behind");

    assert_eq!(status, 428, "{problem}");
    assert_eq!(problem["code"], "PRECONDITION_REQUIRED");
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("exists at version 1: send `If-Match: \"1\"`"),
        "{problem}"
    );
}

#[tokio::test]
async fn a_new_flag_is_created_without_if_match() {
    let app = App::spawn("memory:").await;

    let (status, etag, change) = app
        .send(
            app.admin(reqwest::Method::PUT, "/admin/flags/checkout.v2")
                .json(&json!({
                    "reason": "new checkout",
                    "flag": {
                        "type": "string",
                        "variants": {"old": "v1", "new": "v2"},
                        "default_variant": "old",
                        "enabled": true,
                        "rollout": {"variant": "new", "percentage": 10},
                    },
                })),
        )
        .await;

    assert_eq!(status, 201, "{change}");
    assert_eq!(etag.as_deref(), Some("\"1\""));
    assert_eq!(change["change"]["action"], "create");
    assert_eq!(change["change"]["actor"], "admin-api");
}

#[tokio::test]
async fn an_invalid_definition_is_a_422_with_a_pointer_to_each_bad_field() {
    let app = App::spawn("memory:").await;
    let put = |key: &str, reason: &str, flag: Value| {
        app.admin(reqwest::Method::PUT, &format!("/admin/flags/{key}"))
            .json(&json!({"reason": reason, "flag": flag}))
    };
    let invalid = json!({
        "type": "bool",
        "variants": {"on": true, "off": "no"},
        "default_variant": "maybe",
        "enabled": true,
        "rollout": {"variant": "on", "percentage": 140},
    });

    let (no_reason, _, reason_problem) = app.send(put("checkout.v2", "", invalid.clone())).await;
    let (unknown, _, typo) = app
        .send(put(
            "checkout.v3",
            "typo",
            json!({
                "type": "bool",
                "variants": {"on": true, "off": false},
                "default_variant": "off",
                "enabeld": false,
            }),
        ))
        .await;
    let (everything, _, all) = app
        .send(put(
            "checkout.v4",
            " ",
            json!({
                "type": "bool",
                "variants": {"on": true},
                "default_variant": "nope",
                "enabeld": true,
            }),
        ))
        .await;
    let (status, _, problem) = app.send(put("checkout.v2", "new checkout", invalid)).await;
    // No reason and a misspelt member around a bad definition: the body's
    // shape and its definition, all at once.
    let (shapeless, _, shape) = app
        .send(
            app.admin(reqwest::Method::PUT, "/admin/flags/checkout.v5")
                .json(&json!({
                    "actr": "sre",
                    "flag": {
                        "type": "bool",
                        "variants": {"on": true},
                        "default_variant": "nope",
                        "enabled": true,
                    },
                })),
        )
        .await;

    assert_eq!(no_reason, 422, "{reason_problem}");
    assert_eq!(reason_problem["code"], "VALIDATION_FAILED");
    assert!(
        pointers(&reason_problem).contains(&"/reason".to_owned()),
        "{reason_problem}"
    );
    assert_eq!(unknown, 422, "{typo}");
    // A typo of `enabled` leaves it out: both are said.
    assert_eq!(
        pointers(&typo),
        ["/flag/enabled", "/flag/enabeld"],
        "{typo}"
    );
    assert_eq!(everything, 422, "{all}");
    assert_eq!(
        pointers(&all),
        [
            "/reason",
            "/flag/enabled",
            "/flag/enabeld",
            "/flag/default_variant"
        ],
        "every problem at once"
    );
    assert_eq!(shapeless, 422, "{shape}");
    assert_eq!(
        pointers(&shape),
        ["/reason", "/flag/default_variant", "/actr"],
        "{shape}"
    );
    assert_eq!(status, 422, "{problem}");
    // Each answer is an envelope of the published schema: UPPER_SNAKE
    // field codes, RFC 6901 pointers.
    let schema: Value = serde_json::from_str(opsready::problem::JSON_SCHEMA).unwrap();
    let validator = jsonschema::draft202012::new(&schema).unwrap();
    for answer in [&reason_problem, &typo, &all, &shape, &problem] {
        let errors: Vec<String> = validator
            .iter_errors(answer)
            .map(|error| format!("{error} at {}", error.instance_path))
            .collect();
        assert!(errors.is_empty(), "{errors:?} in {answer}");
    }
    assert_eq!(code_of(&all, "/reason"), "MISSING_FIELD");
    assert_eq!(code_of(&all, "/flag/enabled"), "MISSING_FIELD");
    assert_eq!(code_of(&all, "/flag/enabeld"), "UNKNOWN_FIELD");
    assert_eq!(code_of(&all, "/flag/default_variant"), "INVALID_VALUE");
    let pointers = pointers(&problem);
    for expected in [
        "/flag/variants/off",
        "/flag/default_variant",
        "/flag/rollout/percentage",
    ] {
        assert!(
            pointers.iter().any(|pointer| pointer == expected),
            "{expected} missing from {pointers:?}"
        );
    }
}

#[tokio::test]
async fn kill_and_rollback_change_what_handlers_serve_and_are_in_the_history() {
    let app = App::spawn("memory:").await;
    assert_eq!(app.hello().await, "HELLO");

    let (killed, _, _) = app
        .send(
            app.admin(reqwest::Method::POST, "/admin/flags/greeting.shout/kill")
                .json(&json!({"reason": "shouting breaks the mobile app", "actor": "sre"})),
        )
        .await;
    let after_kill = app.hello().await;
    let rollback = |based_on: Option<&str>| {
        let request = app
            .admin(
                reqwest::Method::POST,
                "/admin/flags/greeting.shout/rollback",
            )
            .json(&json!({"reason": "fixed in 2.4.1"}));
        match based_on {
            Some(version) => request.header("if-match", version),
            None => request,
        }
    };
    let (unbased, _, required) = app.send(rollback(None)).await;
    let (never_was, _, _) = app
        .send(
            app.admin(reqwest::Method::POST, "/admin/flags/no.such/rollback")
                .json(&json!({"reason": "typo"})),
        )
        .await;
    let (no_such_version, _, version_problem) = app
        .send(
            app.admin(
                reqwest::Method::POST,
                "/admin/flags/greeting.shout/rollback",
            )
            .header("if-match", "\"2\"")
            .json(&json!({"reason": "undo", "to_version": 99})),
        )
        .await;
    let (rolled_back, etag, change) = app.send(rollback(Some("\"2\""))).await;
    // Sent again, it would undo itself: the version it was based on is gone.
    let (again, _, failed) = app.send(rollback(Some("\"2\""))).await;
    let after_rollback = app.hello().await;
    let (_, _, history) = app
        .send(app.admin(reqwest::Method::GET, "/admin/flags/greeting.shout/history"))
        .await;

    assert_eq!(killed, 200);
    assert_eq!(
        after_kill, "hello",
        "a killed flag serves its default variant"
    );
    assert_eq!(unbased, 428, "{required}");
    assert_eq!(never_was, 404);
    // The flag exists; the version asked for does not: the request is wrong.
    assert_eq!(no_such_version, 422, "{version_problem}");
    assert_eq!(version_problem["errors"][0]["pointer"], "/to_version");
    assert_eq!(version_problem["errors"][0]["code"], "INVALID_VALUE");
    assert!(
        required["detail"].as_str().unwrap().contains("version 2"),
        "{required}"
    );
    assert_eq!(rolled_back, 200, "{change}");
    assert_eq!(again, 412, "{failed}");
    assert_eq!(etag.as_deref(), Some("\"3\""));
    assert_eq!(change["change"]["restores"], 1);
    assert_eq!(after_rollback, "HELLO");
    let actions = actions(&history);
    assert_eq!(actions, ["create", "kill", "rollback"]);
    assert_eq!(history["changes"][1]["actor"], "sre");
    assert_eq!(
        history["changes"][1]["reason"],
        "shouting breaks the mobile app"
    );
}

#[tokio::test]
async fn a_kill_based_on_a_version_sent_again_does_not_undo_a_rollback_made_since() {
    // Arrange: a kill based on version 1 lands as version 2; its answer is
    // lost, and meanwhile someone rolls it back (version 3).
    let app = App::spawn("memory:").await;
    let kill = || {
        app.admin(reqwest::Method::POST, "/admin/flags/greeting.shout/kill")
            .header("if-match", "\"1\"")
            .json(&json!({"reason": "shouting breaks the mobile app", "actor": "bob"}))
    };
    let (first, first_etag, _) = app.send(kill()).await;
    // The same kill sent again right away is answered with the kill.
    let (repeated, repeated_etag, _) = app.send(kill()).await;
    let (rolled_back, _, _) = app
        .send(
            app.admin(
                reqwest::Method::POST,
                "/admin/flags/greeting.shout/rollback",
            )
            .header("if-match", "\"2\"")
            .json(&json!({"reason": "fixed", "actor": "alice"})),
        )
        .await;

    // Act: the kill sent again once more.
    let (late, _, failed) = app.send(kill()).await;

    // Assert: refused, the rollback stands, and nothing was written.
    assert_eq!(first, 200);
    assert_eq!(first_etag.as_deref(), Some("\"2\""));
    assert_eq!(repeated, 200);
    assert_eq!(repeated_etag.as_deref(), Some("\"2\""));
    assert_eq!(rolled_back, 200);
    assert_eq!(late, 412, "{failed}");
    assert_eq!(failed["code"], "PRECONDITION_FAILED");
    assert_eq!(app.hello().await, "HELLO");
    let (_, _, history) = app
        .send(app.admin(reqwest::Method::GET, "/admin/flags/greeting.shout/history"))
        .await;
    let actions = actions(&history);
    assert_eq!(actions, ["create", "kill", "rollback"]);
}

#[tokio::test]
async fn a_rollback_to_the_current_version_is_refused_and_writes_nothing() {
    let app = App::spawn("memory:").await;

    let (status, _, problem) = app
        .send(
            app.admin(
                reqwest::Method::POST,
                "/admin/flags/greeting.shout/rollback",
            )
            .header("if-match", "\"1\"")
            .json(&json!({"reason": "undo", "to_version": 1})),
        )
        .await;

    assert_eq!(status, 422, "{problem}");
    assert_eq!(problem["errors"][0]["pointer"], "/to_version");
    assert!(
        problem["errors"][0]["detail"]
            .as_str()
            .unwrap()
            .contains("current"),
        "{problem}"
    );
    let (_, _, history) = app
        .send(app.admin(reqwest::Method::GET, "/admin/flags/greeting.shout/history"))
        .await;
    assert_eq!(history["changes"].as_array().unwrap().len(), 1, "{history}");
}

#[tokio::test]
async fn a_flag_file_broken_by_hand_refuses_changes_with_a_409_but_not_a_kill() {
    // Arrange: a file store, then a hand edit with a syntax error on line 3.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    let app = App::spawn(&format!("file://{}", path.display())).await;
    assert_eq!(app.hello().await, "HELLO");
    let broken = "{\n  \"flags\": {\n    \"greeting.shout\": nope\n}\n";
    std::fs::write(&path, broken).unwrap();

    // Act
    let (created, _, refused) = app
        .send(
            app.admin(reqwest::Method::PUT, "/admin/flags/other.flag")
                .json(&json!({"reason": "launch", "flag": on_off_definition()})),
        )
        .await;
    let untouched = std::fs::read_to_string(&path).unwrap();
    let (killed, etag, _) = app
        .send(
            app.admin(reqwest::Method::POST, "/admin/flags/greeting.shout/kill")
                .json(&json!({"reason": "INC-7", "actor": "sre"})),
        )
        .await;

    // Assert: the create names the problem and writes nothing; the kill
    // lands on disk and in handlers, and the edit is kept aside.
    assert_eq!(created, 409, "{refused}");
    assert_eq!(refused["code"], "CONFLICT");
    let detail = refused["detail"].as_str().unwrap();
    assert!(detail.contains("line 3, column"), "{detail}");
    assert!(detail.contains("kill"), "{detail}");
    assert_eq!(untouched, broken);
    assert_eq!(killed, 200);
    assert_eq!(etag.as_deref(), Some("\"2\""));
    assert_eq!(app.hello().await, "hello");
    let file: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(
        file["flags"]["greeting.shout"]["definition"]["enabled"],
        false
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().contains("flags.json.rejected-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read_to_string(&aside[0]).unwrap(), broken);
}

#[tokio::test]
async fn evaluations_are_counted_on_the_metrics_endpoint() {
    let app = App::spawn("memory:").await;

    app.hello().await;
    app.hello().await;
    let exposition = app
        .client
        .get(format!("{}/metrics", app.admin))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();

    assert!(
        exposition.contains("feature_flag_evaluations_total{flag=\"greeting.shout\",variant=\"on\",reason=\"SPLIT\"} 2"),
        "{exposition}"
    );
}

/// The field code of `problem`'s error at `pointer`.
fn code_of<'p>(problem: &'p Value, pointer: &str) -> &'p str {
    problem["errors"]
        .as_array()
        .and_then(|errors| errors.iter().find(|error| error["pointer"] == pointer))
        .and_then(|error| error["code"].as_str())
        .unwrap_or_else(|| panic!("no error at {pointer} in {problem}"))
}

/// A flag store that stops answering (a row lock held elsewhere, a hung
/// database) does not hang the admin API: the request timeout answers.
#[cfg(feature = "flags-postgres")]
#[tokio::test]
async fn an_admin_change_waiting_on_a_hung_store_is_answered_by_the_request_timeout() {
    use sqlx::{Connection as _, Executor as _};

    let Some(scratch) = pg_scratch::Scratch::database("opsready_admin_hung_").await else {
        return;
    };
    let app = App::spawn_with(&scratch.url, &[("TEST__HTTP__REQUEST_TIMEOUT", "500ms")]).await;
    // Another session holds the flag's row, as a stuck writer would.
    let mut holder = sqlx::PgConnection::connect(&scratch.url).await.unwrap();
    holder.execute("BEGIN").await.unwrap();
    holder
        .execute("SELECT version FROM opsready_flags.definitions WHERE key = 'greeting.shout' FOR UPDATE")
        .await
        .unwrap();

    let replace = || {
        app.admin(reqwest::Method::PUT, "/admin/flags/greeting.shout")
            .header("if-match", "\"1\"")
            // A hang fails the test instead of holding it for ever.
            .timeout(std::time::Duration::from_secs(20))
            .json(&json!({"reason": "quiet", "flag": on_off_definition()}))
    };

    let (status, _, problem) = app.send(replace()).await;
    holder.execute("ROLLBACK").await.unwrap();
    // The timed-out change was not applied, and the store serves the next.
    let (again, etag, _) = app.send(replace()).await;
    let _ = holder.close().await;
    drop(app);
    // The guard drops the database on a failed test too.
    scratch.drop_now().await;

    assert_eq!(status, 503, "{problem}");
    assert_eq!(problem["code"], "HANDLER_TIMEOUT");
    assert_eq!(again, 200);
    assert_eq!(etag.as_deref(), Some("\"2\""));
}
