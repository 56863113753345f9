use serde_json::{Value, json};

use crate::helpers::{TestApp, code_at, pointers};

on_both_databases!(
    creating_a_user_answers_201_with_the_user_and_its_location_and_no_password,
    the_password_is_stored_as_an_argon2id_hash_and_never_in_clear,
    every_invalid_field_is_reported_at_once_with_its_pointer,
    a_missing_field_and_an_invalid_one_are_reported_together,
    an_unknown_field_is_reported_rather_than_ignored,
    a_duplicate_email_in_any_case_is_a_409_problem,
    malformed_json_is_a_400_problem,
    a_wrong_content_type_is_a_415_problem,
    a_body_above_the_limit_is_a_413_problem_the_document_declares,
    a_user_can_be_read_back_as_it_was_answered,
    unknown_and_malformed_ids_are_404_and_400_problems,
    users_are_listed_across_pages_without_gaps_or_repeats,
    a_bad_limit_or_cursor_is_a_400_problem_naming_the_parameter,
    a_change_applies_only_the_fields_it_names,
    a_change_to_a_taken_email_is_a_409_problem,
    a_change_with_invalid_fields_is_a_422_problem_and_changes_nothing,
    a_deleted_user_is_gone,
);

fn ann() -> Value {
    json!({"email": "Ann@Example.com", "name": " Ann Lee ", "password": "correct horse battery"})
}

async fn creating_a_user_answers_201_with_the_user_and_its_location_and_no_password(app: TestApp) {
    // Act
    let response = app.post_json("/users", &ann()).await;

    // Assert
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let text = response.text().await.unwrap();
    assert!(!text.contains("correct horse"), "{text}");
    assert!(!text.contains("argon2"), "{text}");
    let user: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(location, format!("/users/{}", user["id"].as_str().unwrap()));
    // Normalised by the domain types.
    assert_eq!(user["email"], "ann@example.com");
    assert_eq!(user["name"], "Ann Lee");
    assert_eq!(user["created_at"], user["updated_at"]);
    assert!(user.get("password").is_none());
}

async fn the_password_is_stored_as_an_argon2id_hash_and_never_in_clear(app: TestApp) {
    app.create_user("ann@example.com").await;

    let hashes = app.query_strings("SELECT password_hash FROM users").await;

    assert_eq!(hashes.len(), 1);
    assert!(hashes[0].starts_with("$argon2id$v=19$"), "{}", hashes[0]);
    assert!(!hashes[0].contains("correct horse"));
}

async fn every_invalid_field_is_reported_at_once_with_its_pointer(app: TestApp) {
    let response = app
        .post_json(
            "/users",
            &json!({"email": "not-an-email", "name": "  ", "password": "short"}),
        )
        .await;

    assert_eq!(response.status(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "VALIDATION_FAILED");
    assert_eq!(pointers(&problem), ["/email", "/name", "/password"]);
    assert_eq!(code_at(&problem, "/email"), "INVALID_EMAIL");
    assert_eq!(code_at(&problem, "/name"), "INVALID_NAME");
    assert_eq!(code_at(&problem, "/password"), "INVALID_PASSWORD");
    // Nothing was stored.
    let users: Value = app.get("/users").await.json().await.unwrap();
    assert_eq!(users["items"], json!([]));
}

async fn a_missing_field_and_an_invalid_one_are_reported_together(app: TestApp) {
    let response = app
        .post_json("/users", &json!({"email": "nope", "password": 12345678}))
        .await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(code_at(&problem, "/name"), "MISSING_FIELD");
    assert_eq!(code_at(&problem, "/password"), "INVALID_TYPE");
    assert_eq!(code_at(&problem, "/email"), "INVALID_EMAIL");
}

async fn an_unknown_field_is_reported_rather_than_ignored(app: TestApp) {
    let mut body = ann();
    body["emial"] = json!("typo@example.com");

    let response = app.post_json("/users", &body).await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(code_at(&problem, "/emial"), "UNKNOWN_FIELD");
}

async fn a_duplicate_email_in_any_case_is_a_409_problem(app: TestApp) {
    app.create_user("ann@example.com").await;

    let response = app.post_json("/users", &ann()).await;

    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "EMAIL_TAKEN");
    assert_eq!(problem["status"], 409);
    assert_eq!(pointers(&problem), ["/email"]);
}

async fn malformed_json_is_a_400_problem(app: TestApp) {
    let response = app
        .post_raw("/users", "application/json", r#"{"email": "ann@"#)
        .await;

    assert_eq!(response.status(), 400);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "MALFORMED_JSON");
}

async fn a_wrong_content_type_is_a_415_problem(app: TestApp) {
    let body = ann().to_string();

    let response = app.post_raw("/users", "text/plain", &body).await;

    assert_eq!(response.status(), 415);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "UNSUPPORTED_MEDIA_TYPE");
}

async fn a_user_can_be_read_back_as_it_was_answered(app: TestApp) {
    let created = app.create_user("ann@example.com").await;

    let response = app
        .get(&format!("/users/{}", created["id"].as_str().unwrap()))
        .await;

    assert_eq!(response.status(), 200);
    let read: Value = response.json().await.unwrap();
    // Timestamps included: both databases keep microseconds.
    assert_eq!(read, created);
}

async fn unknown_and_malformed_ids_are_404_and_400_problems(app: TestApp) {
    let unknown = "/users/0190b3c4-0000-7000-8000-000000000000";

    let get = app.get(unknown).await;
    let patch = app.patch_json(unknown, &json!({"name": "Bo"})).await;
    let delete = app.delete(unknown).await;
    let malformed = app.get("/users/42").await;

    for response in [get, patch, delete] {
        assert_eq!(response.status(), 404);
        let problem: Value = response.json().await.unwrap();
        assert_eq!(problem["code"], "NOT_FOUND");
    }
    assert_eq!(malformed.status(), 400);
    let problem: Value = malformed.json().await.unwrap();
    assert_eq!(problem["code"], "INVALID_PATH_PARAMETER");
}

async fn users_are_listed_across_pages_without_gaps_or_repeats(app: TestApp) {
    // Arrange
    let mut created = Vec::new();
    for n in 0..5 {
        let user = app.create_user(&format!("user{n}@example.com")).await;
        created.push(user["id"].as_str().unwrap().to_owned());
    }

    // Act
    let mut seen = Vec::new();
    let mut sizes = Vec::new();
    let mut path = "/users?limit=2".to_owned();
    loop {
        let response = app.get(&path).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        let items = page["items"].as_array().unwrap();
        sizes.push(items.len());
        seen.extend(items.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    // Assert: oldest first, and the last page is not empty.
    assert_eq!(sizes, [2, 2, 1]);
    assert_eq!(seen, created);
}

async fn a_bad_limit_or_cursor_is_a_400_problem_naming_the_parameter(app: TestApp) {
    let limit = app.get("/users?limit=0").await;
    let cursor = app.get("/users?cursor=not-a-cursor").await;
    let not_a_number = app.get("/users?limit=many").await;

    assert_eq!(limit.status(), 400);
    let limit: Value = limit.json().await.unwrap();
    assert_eq!(limit["code"], "INVALID_QUERY_PARAMETER");
    assert_eq!(limit["errors"][0]["parameter"], "limit");
    assert_eq!(cursor.status(), 400);
    let cursor: Value = cursor.json().await.unwrap();
    assert_eq!(cursor["errors"][0]["parameter"], "cursor");
    assert_eq!(cursor["errors"][0]["code"], "INVALID_CURSOR");
    assert_eq!(not_a_number.status(), 400);
}

async fn a_change_applies_only_the_fields_it_names(app: TestApp) {
    let created = app.create_user("ann@example.com").await;
    let path = format!("/users/{}", created["id"].as_str().unwrap());

    let response = app.patch_json(&path, &json!({"name": "Ann Smith"})).await;

    assert_eq!(response.status(), 200);
    let changed: Value = response.json().await.unwrap();
    assert_eq!(changed["name"], "Ann Smith");
    assert_eq!(changed["email"], "ann@example.com");
    assert_eq!(changed["created_at"], created["created_at"]);
    assert_ne!(changed["updated_at"], created["updated_at"]);
    let read: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(read, changed);
}

async fn a_change_to_a_taken_email_is_a_409_problem(app: TestApp) {
    app.create_user("ann@example.com").await;
    let bo = app.create_user("bo@example.com").await;
    let path = format!("/users/{}", bo["id"].as_str().unwrap());

    let response = app
        .patch_json(&path, &json!({"email": "ANN@example.com"}))
        .await;

    assert_eq!(response.status(), 409);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "EMAIL_TAKEN");
}

async fn a_change_with_invalid_fields_is_a_422_problem_and_changes_nothing(app: TestApp) {
    let created = app.create_user("ann@example.com").await;
    let path = format!("/users/{}", created["id"].as_str().unwrap());

    let response = app
        .patch_json(&path, &json!({"name": "<script>", "password": "short"}))
        .await;

    assert_eq!(response.status(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(pointers(&problem), ["/name", "/password"]);
    let read: Value = app.get(&path).await.json().await.unwrap();
    assert_eq!(read, created);
}

async fn a_deleted_user_is_gone(app: TestApp) {
    let created = app.create_user("ann@example.com").await;
    let path = format!("/users/{}", created["id"].as_str().unwrap());

    let deleted = app.delete(&path).await;
    let read = app.get(&path).await;
    let again = app.delete(&path).await;

    assert_eq!(deleted.status(), 204);
    assert_eq!(read.status(), 404);
    assert_eq!(again.status(), 404);
    // The address is free again.
    app.create_user("ann@example.com").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_locked_sqlite_database_is_a_503_problem_to_retry() {
    use sqlx::Connection as _;

    // Arrange: another connection, an operator's shell say, holds the
    // write lock past the service's busy timeout (5 s).
    let app = crate::helpers::spawn_app(crate::helpers::Backend::Sqlite)
        .await
        .unwrap();
    let mut holder = sqlx::SqliteConnection::connect(&app.database_url)
        .await
        .unwrap();
    sqlx::query("BEGIN EXCLUSIVE")
        .execute(&mut holder)
        .await
        .unwrap();
    let ann = json!({
        "email": "ann@example.com",
        "name": "Ann Lee",
        "password": "correct horse battery",
    });

    // Act
    let locked = app.post_json("/users", &ann).await;
    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let retried = app.post_json("/users", &ann).await;

    // Assert: a retryable 503, not a 500; the retry goes through.
    assert_eq!(locked.status(), 503);
    assert_eq!(locked.headers()["retry-after"], "1");
    let problem: Value = locked.json().await.unwrap();
    assert_eq!(problem["code"], "SERVICE_UNAVAILABLE");
    assert!(!problem.to_string().contains("locked"), "{problem}");
    assert_eq!(retried.status(), 201);
}

async fn a_body_above_the_limit_is_a_413_problem_the_document_declares(app: TestApp) {
    // 2 MiB and a little more, in a field the service would refuse anyway.
    let body = json!({
        "email": "ann@example.com",
        "name": "x".repeat(2 * 1024 * 1024),
        "password": "correct horse battery",
    });

    // `post_json` checks the answer against the OpenAPI document, which
    // must declare the 413.
    let response = app.post_json("/users", &body).await;

    assert_eq!(response.status(), 413);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["code"], "PAYLOAD_TOO_LARGE");
    let users: Value = app.get("/users").await.json().await.unwrap();
    assert_eq!(users["items"], json!([]));
}
