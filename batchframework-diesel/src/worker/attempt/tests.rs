//! Unit tests of the retry policy and the output shaping, without a database: each way an
//! attempt ends, the backoff's doubling and saturation, and the `previous_attempts` shape.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::json;

use super::{no_group, retry_delay, with_previous_attempts, Attempt, Decision};
use crate::backend::UtcDateTime;
use crate::registry::{ActionGroupResult, ActionResult, ErrorData};
use crate::status::OperationResult;
use crate::worker::shared::Outcome;

fn result(failed: bool) -> ActionGroupResult {
    ActionGroupResult {
        actiongroup_name: "import".to_owned(),
        results: vec![ActionResult {
            action_name: "load".to_owned(),
            failed,
            errordata: failed.then(|| ErrorData {
                data: json!("boom"),
                traceback: "boom".to_owned(),
            }),
            success_output_data: (!failed).then(|| json!({ "rows": 3 })),
        }],
    }
}

fn attempt(attempts: i32, max_attempts: i32) -> Attempt<'static> {
    Attempt {
        attempts,
        max_attempts,
        earlier_output: "",
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, 2, 3, 4, 5)
        .single()
        .unwrap_or_default()
}

fn retry_time(decision: Decision) -> Option<DateTime<Utc>> {
    match decision {
        Decision::Retry { run_after, .. } => Some(run_after.0),
        Decision::Finish { .. } | Decision::Interrupted => None,
    }
}

#[test]
fn worker_lost_once_attempts_exceed_max_attempts() {
    assert_eq!(
        attempt(4, 3).worker_lost(),
        Some(Decision::Finish {
            result: OperationResult::Failed,
            output: json!({ "error": "worker lost", "attempts": 3 }),
            outcome: Outcome::Lost,
        })
    );
}

#[test]
fn not_lost_while_attempts_remain_or_on_the_last_one() {
    assert_eq!(attempt(1, 3).worker_lost(), None);
    assert_eq!(attempt(3, 3).worker_lost(), None);
}

#[test]
fn unknown_group_fails_without_retry() {
    assert_eq!(
        no_group("send-email"),
        Decision::Finish {
            result: OperationResult::Failed,
            output: json!({ "error": "no action group is registered as `send-email`" }),
            outcome: Outcome::Failed,
        }
    );
}

#[test]
fn success_finishes_successful_even_on_the_last_attempt() {
    for (attempts, max) in [(1, 3), (3, 3)] {
        let decision =
            attempt(attempts, max).after_run(Duration::from_secs(1), &result(false), now());
        assert!(
            matches!(
                decision,
                Decision::Finish {
                    result: OperationResult::Successful,
                    outcome: Outcome::Succeeded,
                    ..
                }
            ),
            "attempt {attempts}/{max}: {decision:?}"
        );
    }
}

#[test]
fn failure_with_attempts_left_is_retried_after_the_backoff() {
    let decision = attempt(1, 3).after_run(Duration::from_secs(30), &result(true), now());
    assert_eq!(
        decision,
        Decision::Retry {
            output: serde_json::to_value(result(true)).unwrap_or_default(),
            run_after: UtcDateTime(now() + chrono::Duration::seconds(30)),
        }
    );
}

#[test]
fn failure_on_the_last_attempt_finishes_failed() {
    let decision = attempt(3, 3).after_run(Duration::from_secs(30), &result(true), now());
    let mut output = serde_json::to_value(result(true)).unwrap_or_default();
    output["previous_attempts"] = json!([]);
    assert_eq!(
        decision,
        Decision::Finish {
            result: OperationResult::Failed,
            output,
            outcome: Outcome::Failed,
        }
    );
}

#[test]
fn zero_backoff_retries_at_once() {
    let decision = attempt(2, 5).after_run(Duration::ZERO, &result(true), now());
    assert_eq!(retry_time(decision), Some(now()));
}

#[test]
fn backoff_doubles_with_each_attempt() {
    let backoff = Duration::from_millis(250);
    let delays: Vec<_> = (1..=5)
        .map(|attempts| retry_delay(backoff, attempts))
        .collect();
    assert_eq!(
        delays,
        [250, 500, 1_000, 2_000, 4_000].map(Duration::from_millis)
    );
    let retried_at =
        |attempts| retry_time(attempt(attempts, 10).after_run(backoff, &result(true), now()));
    assert_eq!(retried_at(3), Some(now() + chrono::Duration::seconds(1)));
    assert_eq!(retried_at(4), Some(now() + chrono::Duration::seconds(2)));
}

#[test]
fn backoff_stops_doubling_after_twenty_doublings() {
    let second = Duration::from_secs(1);
    let most = Duration::from_secs(1 << 20);
    assert_eq!(retry_delay(second, 21), most);
    assert_eq!(retry_delay(second, 22), most);
    assert_eq!(retry_delay(second, i32::MAX), most);
    let decision = attempt(i32::MAX - 1, i32::MAX).after_run(second, &result(true), now());
    assert_eq!(
        retry_time(decision),
        Some(now() + chrono::Duration::seconds(1 << 20))
    );
}

#[test]
fn backoff_saturates_instead_of_overflowing() {
    assert_eq!(retry_delay(Duration::MAX, 1), Duration::MAX);
    assert_eq!(retry_delay(Duration::MAX, 30), Duration::MAX);
    assert_eq!(
        retry_delay(Duration::from_secs(u64::MAX / 2), 3),
        Duration::MAX
    );
}

#[test]
fn attempt_counts_below_one_use_the_plain_backoff() {
    let backoff = Duration::from_secs(7);
    assert_eq!(retry_delay(backoff, 0), backoff);
    assert_eq!(retry_delay(backoff, -5), backoff);
    assert_eq!(retry_delay(backoff, i32::MIN), backoff);
}

#[test]
fn retry_time_is_clamped_into_the_storable_years() {
    let late = Utc
        .with_ymd_and_hms(9999, 12, 31, 0, 0, 0)
        .single()
        .unwrap_or_default();
    let decision = attempt(1, 2).after_run(Duration::from_secs(2 * 24 * 3600), &result(true), late);
    let last = DateTime::<Utc>::from_timestamp_micros(253_402_300_799_999_999);
    assert_eq!(retry_time(decision), last);
}

/// A backoff too large for any timestamp (a configuration mistake) waits until the latest
/// storable instant: neither an overflow panic nor a retry at once.
#[test]
fn a_backoff_beyond_any_timestamp_waits_until_the_latest_storable_instant() {
    let now = Utc::now();
    let last = DateTime::<Utc>::from_timestamp_micros(253_402_300_799_999_999);
    for backoff in [
        Duration::from_secs(10_u64.pow(13)), // converts, but overflows the date
        Duration::MAX,                       // does not even convert
    ] {
        let decision = attempt(1, 2).after_run(backoff, &result(true), now);
        assert_eq!(retry_time(decision), last, "{backoff:?}");
    }
}

#[test]
fn first_attempt_has_no_previous_attempts() {
    let output = with_previous_attempts(1, r#"{"error":"stale"}"#, &result(false));
    assert_eq!(
        output,
        serde_json::to_value(result(false)).unwrap_or_default()
    );
    assert!(output.get("previous_attempts").is_none());
}

#[test]
fn second_attempt_keeps_the_first_attempts_output() {
    let first = serde_json::to_string(&result(true)).unwrap_or_default();
    let output = with_previous_attempts(2, &first, &result(false));
    let mut expected = serde_json::to_value(result(false)).unwrap_or_default();
    expected["previous_attempts"] = json!([serde_json::to_value(result(true)).unwrap_or_default()]);
    assert_eq!(output, expected);
}

#[test]
fn previous_attempts_stay_one_flat_list_oldest_first() {
    let earlier = json!({
        "actiongroup_name": "import",
        "results": ["second"],
        "previous_attempts": [{ "results": ["first"] }],
    });
    let output = with_previous_attempts(3, &earlier.to_string(), &result(true));
    assert_eq!(
        output["previous_attempts"],
        json!([
            { "results": ["first"] },
            { "actiongroup_name": "import", "results": ["second"] },
        ])
    );
    assert_eq!(output["actiongroup_name"], json!("import"));
    assert_eq!(output["results"][0]["action_name"], json!("load"));
}

#[test]
fn a_malformed_previous_list_is_restarted() {
    let earlier = json!({ "results": ["second"], "previous_attempts": "not a list" });
    let output = with_previous_attempts(3, &earlier.to_string(), &result(true));
    assert_eq!(
        output["previous_attempts"],
        json!([{ "results": ["second"] }])
    );
}

#[test]
fn missing_or_unreadable_earlier_output_counts_as_none() {
    for earlier in ["", "not json", "null", "[1, 2]", r#""text""#] {
        let output = with_previous_attempts(2, earlier, &result(true));
        assert_eq!(
            output["previous_attempts"],
            json!([]),
            "earlier output {earlier:?}"
        );
    }
}

#[test]
fn a_lost_workers_output_is_kept_as_it_was() {
    let lost = json!({ "error": "worker lost", "attempts": 1 });
    let output = with_previous_attempts(2, &lost.to_string(), &result(false));
    assert_eq!(output["previous_attempts"], json!([lost]));
}

#[test]
fn the_first_attempt_after_an_operator_retry_keeps_the_list() {
    let retried = json!({ "previous_attempts": [{ "error": "first" }, { "error": "second" }] });
    let output = with_previous_attempts(1, &retried.to_string(), &result(true));
    assert_eq!(
        output["previous_attempts"],
        json!([{ "error": "first" }, { "error": "second" }])
    );
}
