//! How values are shown: timestamps the browser can put in its own time zone, durations, rates
//! and short summaries of JSON.

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use maud::{html, Markup};
use serde_json::Value;

/// A timestamp as `<time>`: UTC as served (and on hover), turned into the viewer's time zone
/// by the page's script.
pub(crate) fn time(at: DateTime<Utc>) -> Markup {
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    html! {
        time datetime=(at.to_rfc3339_opts(SecondsFormat::Millis, true)) title=(utc) { (utc) }
    }
}

/// An optional timestamp; a dash when there is none.
pub(crate) fn maybe_time(at: Option<DateTime<Utc>>) -> Markup {
    match at {
        Some(at) => time(at),
        None => html! { span.muted { "—" } },
    }
}

/// A duration as a person reads it: `850 ms`, `12.3 s`, `4 min 5 s`, `3 h 20 min`, `2 d 4 h`.
pub(crate) fn duration(duration: Duration) -> String {
    let ms = duration.num_milliseconds().max(0);
    let s = ms / 1000;
    match s {
        _ if ms < 1000 => format!("{ms} ms"),
        0..=59 => format!("{:.1} s", ms as f64 / 1000.0),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        3600..=86_399 => format!("{} h {} min", s / 3600, s % 3600 / 60),
        _ => format!("{} d {} h", s / 86_400, s % 86_400 / 3600),
    }
}

/// A rate per minute with the precision it deserves.
pub(crate) fn per_minute(rate: f64) -> String {
    if rate == 0.0 {
        "0".to_owned()
    } else if rate < 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.0}")
    }
}

/// JSON pretty-printed, or the text as it is when it is not JSON.
pub(crate) fn pretty_json(text: &str) -> String {
    match serde_json::from_str::<Value>(text) {
        Ok(value) => serde_json::to_string_pretty(&value).unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

/// At most `max` characters of `text`, with an ellipsis when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

/// The error a failed operation's output records, in one line: the first failed action's error
/// data for a registry run, the `error` or `message` field of an object, or the output itself.
pub(crate) fn failure_summary(output: &str) -> String {
    let value: Value = match serde_json::from_str(output) {
        Ok(value) => value,
        Err(_) => return truncate(output, 200),
    };
    let found = value
        .get("results")
        .and_then(Value::as_array)
        .and_then(|results| {
            results
                .iter()
                .find(|result| result.get("failed") == Some(&Value::Bool(true)))
        })
        .and_then(|failed| {
            let name = failed
                .get("action_name")
                .and_then(Value::as_str)
                .unwrap_or("?");
            let data = failed.pointer("/errordata/data")?;
            Some(format!("{name}: {}", plain(data)))
        })
        .or_else(|| {
            ["error", "message"]
                .iter()
                .find_map(|key| value.get(*key).map(plain))
        });
    truncate(&found.unwrap_or_else(|| plain(&value)), 200)
}

/// `text` percent-encoded as one URL component (a query value, a path segment, a cookie
/// value): everything but RFC 3986's unreserved characters.
pub(crate) fn url_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A JSON value as text: a string without its quotes, anything else compact.
pub(crate) fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::milliseconds(850)), "850 ms");
        assert_eq!(duration(Duration::milliseconds(12_340)), "12.3 s");
        assert_eq!(duration(Duration::seconds(245)), "4 min 5 s");
        assert_eq!(duration(Duration::seconds(12_000)), "3 h 20 min");
        assert_eq!(duration(Duration::seconds(187_200)), "2 d 4 h");
        assert_eq!(duration(Duration::seconds(-5)), "0 ms");
    }

    #[test]
    fn failures_are_summarised_from_what_the_output_holds() {
        let run = r#"{"actiongroup_name":"import","results":[
            {"action_name":"fetch","failed":false,"errordata":null,"success_output_data":1},
            {"action_name":"parse","failed":true,"errordata":{"data":"bad row 7","traceback":"…"},
             "success_output_data":null}]}"#;
        assert_eq!(failure_summary(run), "parse: bad row 7");
        assert_eq!(failure_summary(r#"{"error":"timeout"}"#), "timeout");
        assert_eq!(failure_summary(r#""file not found""#), "file not found");
        assert_eq!(failure_summary("not json"), "not json");
        assert_eq!(truncate("abcdef", 3), "abc…");
        assert_eq!(truncate("äbc", 3), "äbc");
    }
}
