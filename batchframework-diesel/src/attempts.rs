//! The `previous_attempts` list an operation's output carries: what each earlier attempt
//! stored, oldest first, kept when a worker retries the operation after a failure and when an
//! operator queues a failed one again.

use serde_json::{Map, Value};

/// The key of the list in an output object.
pub(crate) const PREVIOUS_ATTEMPTS: &str = "previous_attempts";

/// An output split into the `previous_attempts` list it carries (empty when none) and the rest
/// of it (`None` when the output is empty, not JSON or not an object).
pub(crate) fn split_output(output: &str) -> (Vec<Value>, Option<Map<String, Value>>) {
    match serde_json::from_str(output) {
        Ok(Value::Object(mut object)) => {
            let previous = match object.remove(PREVIOUS_ATTEMPTS) {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            };
            (previous, Some(object))
        }
        _ => (Vec::new(), None),
    }
}

/// Every attempt `output` records, oldest first: its `previous_attempts`, then the rest of it
/// unless nothing is left (an output that is only the list, as a retried operation has before
/// it runs again). An output that is not an object (`finish_failed(conn, &"file not found")`
/// stores a JSON string) is kept as it is, and text that is not JSON as a JSON string: what
/// the operator retries must not lose the error it failed with.
pub(crate) fn attempts_so_far(output: &str) -> Vec<Value> {
    let (mut attempts, last) = split_output(output);
    match last {
        Some(last) if !last.is_empty() => attempts.push(Value::Object(last)),
        Some(_) => {}
        None => match serde_json::from_str::<Value>(output) {
            Ok(Value::Null) => {}
            Ok(value) => attempts.push(value),
            Err(_) if output.trim().is_empty() => {}
            Err(_) => attempts.push(Value::String(output.to_owned())),
        },
    }
    attempts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::attempts_so_far;

    #[test]
    fn attempts_are_the_list_then_the_last_output() {
        let output = json!({"error": "second", "previous_attempts": [{"error": "first"}]});
        assert_eq!(
            attempts_so_far(&output.to_string()),
            [json!({"error": "first"}), json!({"error": "second"})]
        );
    }

    #[test]
    fn an_output_that_is_only_the_list_adds_nothing() {
        let output = json!({"previous_attempts": [{"error": "first"}]});
        assert_eq!(
            attempts_so_far(&output.to_string()),
            [json!({"error": "first"})]
        );
    }

    #[test]
    fn no_output_is_no_attempt() {
        for output in ["", " ", "null", "{}"] {
            assert!(attempts_so_far(output).is_empty(), "{output}");
        }
    }

    #[test]
    fn an_output_that_is_not_an_object_is_kept_as_it_is() {
        assert_eq!(
            attempts_so_far("\"file not found\""),
            [json!("file not found")]
        );
        assert_eq!(attempts_so_far("[1]"), [json!([1])]);
        assert_eq!(attempts_so_far("not json"), [json!("not json")]);
    }
}
