use serde_json::Value;

use crate::helpers::Service;

/// The line that ends request `id`, skipping the lines logged before it.
fn request_line(service: &Service, id: &str) -> Value {
    loop {
        let line: Value = serde_json::from_str(&service.wait_for_line(id)).unwrap();
        if line["target"] == "opsready::request" {
            return line;
        }
    }
}

#[tokio::test]
async fn hello_greets_with_the_configured_greeting() {
    let service = Service::start(&[("MINIMAL__GREETING", "Bonjour")]);

    let plain: Value = service.get("/hello").await.json().await.unwrap();
    let named = service.get("/hello/ops").await;

    assert_eq!(plain["message"], "Bonjour, world!");
    assert_eq!(named.status(), 200);
    assert!(named.headers().contains_key("x-request-id"));
    let named: Value = named.json().await.unwrap();
    assert_eq!(named["message"], "Bonjour, ops!");
}

#[tokio::test]
async fn failures_answer_problems_without_internals_and_the_service_keeps_serving() {
    let service = Service::start(&[]);

    let panic = service.get("/fail?kind=panic").await;
    let error = service.get("/fail?kind=error").await;
    let bad = service.get("/fail?kind=sideways").await;
    let after = service.get("/hello").await.status();

    assert_eq!(panic.status(), 500);
    assert_eq!(panic.headers()["content-type"], "application/problem+json");
    let panic = panic.text().await.unwrap();
    assert!(!panic.contains("on purpose"), "{panic}");
    assert_eq!(error.status(), 500);
    let error = error.text().await.unwrap();
    assert!(!error.contains("relation"), "{error}");
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert_eq!(bad["code"], "INVALID_QUERY_PARAMETER");
    assert_eq!(after, 200);
}

#[tokio::test]
async fn a_failed_request_logs_the_cause_its_answer_leaves_out() {
    let service = Service::start(&[("MINIMAL__TELEMETRY__LOG__FORMAT", "json")]);

    for (kind, id) in [("error", "req-fail-error"), ("panic", "req-fail-panic")] {
        let response = service
            .client
            .get(format!("{}/fail?kind={kind}", service.base))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 500);
        let body = response.text().await.unwrap();
        // A panic has a line of its own before the request's.
        let line = request_line(&service, id);

        assert_eq!(line["level"], "ERROR");
        assert_eq!(line["code"], "INTERNAL_ERROR", "{line}");
        let error = line["error"].as_str().unwrap_or_default();
        let cause = match kind {
            "error" => "relation \"users\" does not exist",
            _ => "panicked on purpose",
        };
        assert!(error.contains(cause), "{line}");
        assert!(!body.contains(cause), "{body}");
    }
}

#[tokio::test]
async fn a_password_the_cause_quotes_is_masked_in_the_log_line() {
    let service = Service::start(&[("MINIMAL__TELEMETRY__LOG__FORMAT", "json")]);

    let response = service
        .client
        .get(format!("{}/fail?kind=error", service.base))
        .header("x-request-id", "req-fail-masked")
        .send()
        .await
        .unwrap();
    let line = request_line(&service, "req-fail-masked");

    assert_eq!(response.status(), 500);
    assert_eq!(
        line["error"],
        "the database at postgres://app:[REDACTED]@db/app said: relation \"users\" does not exist",
        "{line}"
    );
}

#[tokio::test]
async fn a_panic_is_a_json_line_of_the_request_with_its_location() {
    let service = Service::start(&[("MINIMAL__TELEMETRY__LOG__FORMAT", "json")]);

    let response = service
        .client
        .get(format!("{}/fail?kind=panic", service.base))
        .header("x-request-id", "req-panic-line")
        .send()
        .await
        .unwrap();
    let line = service.wait_for_line("\"target\":\"opsready::panic\"");

    assert_eq!(response.status(), 500);
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["level"], "ERROR");
    assert_eq!(
        line["message"],
        "panicked: the /fail endpoint panicked on purpose"
    );
    let location = line["location"].as_str().unwrap_or_default();
    assert!(location.contains("src/lib.rs:"), "{line}");
    assert_eq!(line["request_id"], "req-panic-line", "{line}");
    assert_eq!(line["route"], "/fail");
}

#[tokio::test]
async fn error_answers_log_their_problem_code() {
    let service = Service::start(&[
        ("MINIMAL__TELEMETRY__LOG__FORMAT", "json"),
        ("MINIMAL__HTTP__REQUEST_TIMEOUT", "200ms"),
    ]);

    // A timeout (503, the same status as shedding) and a bad query (400).
    let cases = [
        (
            "/work?ms=5000",
            "req-code-timeout",
            503,
            "HANDLER_TIMEOUT",
            "request failed",
        ),
        (
            "/fail?kind=sideways",
            "req-code-bad",
            400,
            "INVALID_QUERY_PARAMETER",
            "request finished",
        ),
    ];
    for (path, id, status, code, message) in cases {
        let response = service
            .client
            .get(format!("{}{path}", service.base))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let line = request_line(&service, id);

        assert_eq!(response.status(), status);
        assert_eq!(line["message"], message, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert_eq!(line["code"], code, "{line}");
    }
}

#[tokio::test]
async fn work_beyond_the_request_timeout_is_a_503_problem_with_retry_after() {
    let service = Service::start(&[("MINIMAL__HTTP__REQUEST_TIMEOUT", "200ms")]);

    let response = service.get("/work?ms=5000").await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], "HANDLER_TIMEOUT");
}

#[tokio::test]
async fn the_admin_listener_reports_the_build() {
    let service = Service::start(&[]);

    let info: Value = service
        .client
        .get(format!("{}/admin/info", service.admin))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    assert_eq!(info["name"], "minimal");
    assert_eq!(info["version"], env!("CARGO_PKG_VERSION"));
    assert_ne!(info["build_time"], "unknown");
}

#[tokio::test]
async fn logs_are_json_lines_that_carry_the_request_id() {
    let service = Service::start(&[("MINIMAL__TELEMETRY__LOG__FORMAT", "json")]);

    let response = service
        .client
        .get(format!("{}/hello/logs", service.base))
        .header("x-request-id", "req-minimal-logs")
        .header("authorization", "Bearer NEVER-LOGGED-TOKEN")
        .send()
        .await
        .unwrap();
    let lines = service.lines_until("req-minimal-logs");

    assert_eq!(response.headers()["x-request-id"], "req-minimal-logs");
    for line in &lines {
        assert!(!line.contains("NEVER-LOGGED-TOKEN"), "{line}");
    }
    let line: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(line["route"], "/hello/{name}");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["status"], 200);
    assert_eq!(line["level"], "INFO");
}

#[tokio::test]
async fn the_greeting_shouts_once_the_flag_is_rolled_out_and_not_after_a_kill() {
    let token = "a-token-for-the-flags-test";
    let service = Service::start(&[("MINIMAL__ADMIN__TOKEN", token)]);
    let admin = |method: reqwest::Method, path: &str| {
        service
            .client
            .request(
                method,
                format!("{}/admin/flags/greeting.shout{path}", service.admin),
            )
            .bearer_auth(token)
    };
    let message = || async {
        let greeting: Value = service.get("/hello/ops").await.json().await.unwrap();
        greeting["message"].as_str().unwrap().to_owned()
    };

    let declared: Value = admin(reqwest::Method::GET, "")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let before = message().await;
    let rolled_out = admin(reqwest::Method::PUT, "")
        .header("if-match", "\"1\"")
        .json(&serde_json::json!({
            "reason": "shout at everyone",
            "flag": {
                "type": "bool",
                "variants": {"on": true, "off": false},
                "default_variant": "off",
                "enabled": true,
                "rollout": {"variant": "on", "percentage": 100},
            },
        }))
        .send()
        .await
        .unwrap()
        .status();
    let shouting = message().await;
    let killed = admin(reqwest::Method::POST, "/kill")
        .json(&serde_json::json!({"reason": "too loud"}))
        .send()
        .await
        .unwrap()
        .status();
    let after_kill = message().await;

    assert_eq!(declared["version"], 1, "{declared}");
    assert_eq!(declared["flag"]["owner"], "team-greetings");
    assert_eq!(before, "Hello, ops!");
    assert_eq!(rolled_out, 200);
    assert_eq!(shouting, "HELLO, OPS!");
    assert_eq!(killed, 200);
    assert_eq!(after_kill, "Hello, ops!");
}

#[tokio::test]
async fn the_flag_lives_in_the_file_store_where_a_kill_is_written() {
    let dir = tempfile::TempDir::new().unwrap();
    let file = dir.path().join("flags").join("flags.json");
    let store = format!("file://{}", file.display());
    let token = "a-token-for-the-file-test";
    let service = Service::start_in(
        dir,
        &[
            ("MINIMAL__FLAGS__STORE", store.as_str()),
            ("MINIMAL__ADMIN__TOKEN", token),
        ],
    );

    let created: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let killed = service
        .client
        .post(format!("{}/admin/flags/greeting.shout/kill", service.admin))
        .bearer_auth(token)
        .json(&serde_json::json!({"reason": "try it by hand"}))
        .send()
        .await
        .unwrap()
        .status();
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    drop(service);

    let declared = &created["flags"]["greeting.shout"];
    assert_eq!(declared["version"], 1, "{created}");
    assert_eq!(declared["definition"]["default_variant"], "off");
    assert_eq!(killed, 200);
    let flag = &written["flags"]["greeting.shout"];
    assert_eq!(flag["version"], 2, "{written}");
    assert_eq!(flag["definition"]["enabled"], false);
    assert_eq!(written["audit"][1]["action"], "kill");
    assert_eq!(written["audit"][1]["reason"], "try it by hand");
}
