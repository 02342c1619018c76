//! The operations list's query string: the admin API's filter as form fields, read into an
//! [`OperationFilter`], with a clear error for a value that cannot be one.

use batchframework_diesel::{ContextRef, OperationFilter, OperationResult, Status};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;

use crate::error::WebError;
use crate::format::url_component;

/// The fields of the list's form, as the query string carries them (an empty field is no
/// condition).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ListQuery {
    pub(crate) id: Option<String>,
    pub(crate) operation_type: Option<String>,
    pub(crate) status: Option<String>,
    pub(crate) result: Option<String>,
    pub(crate) queue: Option<String>,
    pub(crate) started_by: Option<String>,
    pub(crate) context_type: Option<String>,
    pub(crate) context_id: Option<String>,
    pub(crate) created_after: Option<String>,
    pub(crate) created_before: Option<String>,
    pub(crate) after: Option<String>,
}

/// A field's value, `None` when absent or blank.
pub(crate) fn given(field: &Option<String>) -> Option<&str> {
    field
        .as_deref()
        .map(str::trim)
        .filter(|value| !value.is_empty())
}

impl ListQuery {
    /// The filter the fields ask for, a page of `page_size` after the `after` id.
    pub(crate) fn filter(&self, page_size: u32) -> Result<OperationFilter, WebError> {
        let mut filter = OperationFilter::new().limit(page_size);
        if let Some(kind) = given(&self.operation_type) {
            filter = filter.operation_type(kind);
        }
        if let Some(status) = given(&self.status) {
            let status = status.parse::<Status>().map_err(|_| {
                bad(format!(
                    "`{status}` is not a status: use unprocessed, running or finished"
                ))
            })?;
            filter = filter.status(status);
        }
        if let Some(result) = given(&self.result) {
            let result = result.parse::<OperationResult>().map_err(|_| {
                bad(format!(
                    "`{result}` is not a result: use successful, failed or not-available"
                ))
            })?;
            filter = filter.result(result);
        }
        if let Some(queue) = given(&self.queue) {
            filter = filter.queue(queue);
        }
        if let Some(user) = given(&self.started_by) {
            filter = filter.started_by(user);
        }
        match (given(&self.context_type), given(&self.context_id)) {
            (Some(kind), Some(id)) => {
                filter = filter.context_object(&ContextRef::new(kind.to_owned(), id.to_owned()));
            }
            (None, None) => {}
            _ => {
                return Err(bad(
                    "a context object needs both its type and its id".to_owned()
                ))
            }
        }
        if let Some(after) = given(&self.created_after) {
            filter = filter.created_after(instant("created after", after)?);
        }
        if let Some(before) = given(&self.created_before) {
            filter = filter.created_before(instant("created before", before)?);
        }
        if let Some(after) = given(&self.after) {
            filter = filter.after_id(id("after", after)?);
        }
        Ok(filter)
    }

    /// The query string of these filters (without the page), to link to another page of them.
    pub(crate) fn query_string(&self) -> String {
        let fields = [
            ("operation_type", &self.operation_type),
            ("status", &self.status),
            ("result", &self.result),
            ("queue", &self.queue),
            ("started_by", &self.started_by),
            ("context_type", &self.context_type),
            ("context_id", &self.context_id),
            ("created_after", &self.created_after),
            ("created_before", &self.created_before),
        ];
        fields
            .iter()
            .filter_map(|(name, value)| Some(format!("{name}={}", url_component(given(value)?))))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// An operation id from a form or path.
pub(crate) fn id(field: &str, text: &str) -> Result<i64, WebError> {
    text.trim()
        .trim_start_matches('#')
        .parse::<i64>()
        .map_err(|_| {
            bad(format!(
                "{field}: `{text}` is not an operation id (a whole number)"
            ))
        })
}

/// An instant from a form field: RFC 3339 (`2026-12-01T10:30:00+01:00`), or a date and time
/// without a zone (`2026-12-01T10:30`, what a browser's date-time field sends), read as UTC, or
/// a date (midnight UTC).
pub(crate) fn instant(field: &str, text: &str) -> Result<DateTime<Utc>, WebError> {
    if let Ok(at) = DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&Utc));
    }
    for format in [
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d %H:%M:%S",
    ] {
        if let Ok(at) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(at.and_utc());
        }
    }
    if let Some(at) = NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|date| date.and_hms_opt(0, 0, 0))
    {
        return Ok(at.and_utc());
    }
    Err(bad(format!(
        "{field}: `{text}` is not a time; write it as 2026-12-01T10:30 (UTC) or with an offset, \
         2026-12-01T10:30:00+01:00"
    )))
}

fn bad(message: String) -> WebError {
    WebError::BadRequest(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_read_in_the_forms_people_type() {
        let noon = "2026-12-01T12:00:00Z"
            .parse::<DateTime<Utc>>()
            .unwrap_or_default();
        assert_eq!(instant("t", "2026-12-01T12:00").ok(), Some(noon));
        assert_eq!(instant("t", "2026-12-01T13:00:00+01:00").ok(), Some(noon));
        assert_eq!(instant("t", "2026-12-01 12:00:00").ok(), Some(noon));
        assert!(instant("t", "yesterday").is_err());
        assert_eq!(id("id", " #42 ").ok(), Some(42));
        assert!(id("id", "4x").is_err());
    }

    #[test]
    fn the_query_string_keeps_the_filters_given() {
        let query = ListQuery {
            queue: Some("e mails".to_owned()),
            status: Some(String::new()),
            result: Some("failed".to_owned()),
            ..ListQuery::default()
        };
        assert_eq!(query.query_string(), "result=failed&queue=e%20mails");
    }
}
