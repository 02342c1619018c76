//! `GET /prune`: what pruning would delete, counted, and the button that deletes it.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use batchframework_diesel::worker::WorkerConnection;
use batchframework_diesel::{OperationFilter, OperationResult, Prune, Status};
use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup};
use serde::Deserialize;

use crate::db::with_conn;
use crate::error::WebError;
use crate::filters::given;
use crate::format;
use crate::pages::layout;
use crate::security::Session;
use crate::state::AppState;

/// What to prune: the fields of the prune form (and of its confirmation).
#[derive(Debug, Default, Deserialize)]
pub(crate) struct PruneQuery {
    pub(crate) older_than: Option<String>,
    /// The cutoff the confirmation showed (RFC 3339): the deletion uses it, so it deletes what
    /// was counted, not what crossed the age since.
    pub(crate) before: Option<String>,
    pub(crate) operation_type: Option<String>,
    pub(crate) result: Option<String>,
}

/// A prune request, checked.
pub(crate) struct PruneRequest {
    pub(crate) cutoff: DateTime<Utc>,
    pub(crate) operation_type: Option<String>,
    pub(crate) result: Option<OperationResult>,
}

impl PruneQuery {
    /// The request at `now`, or `None` when no age is given yet.
    pub(crate) fn request(&self, now: DateTime<Utc>) -> Result<Option<PruneRequest>, WebError> {
        let Some(age) = given(&self.older_than) else {
            return Ok(None);
        };
        let cutoff = match given(&self.before) {
            Some(before) => crate::filters::instant("before", before)?,
            None => now - age_of(age)?,
        };
        let result = match given(&self.result) {
            None => None,
            Some(text) => Some(text.parse::<OperationResult>().map_err(|_| {
                WebError::BadRequest(format!(
                    "`{text}` is not a result: use successful or failed"
                ))
            })?),
        };
        Ok(Some(PruneRequest {
            cutoff,
            operation_type: given(&self.operation_type).map(str::to_owned),
            result,
        }))
    }
}

impl PruneRequest {
    /// The finished operations it deletes.
    fn filter(&self) -> OperationFilter {
        let mut filter = OperationFilter::new()
            .status(Status::Finished)
            .finished_before(self.cutoff);
        if let Some(kind) = &self.operation_type {
            filter = filter.operation_type(kind.clone());
        }
        if let Some(result) = self.result {
            filter = filter.result(result);
        }
        filter
    }

    /// The deletion itself.
    pub(crate) fn prune(&self) -> Prune {
        let mut prune = Prune::finished_before(self.cutoff);
        if let Some(kind) = &self.operation_type {
            prune = prune.operation_type(kind.clone());
        }
        if let Some(result) = self.result {
            prune = prune.result(result);
        }
        prune
    }
}

/// An age such as `30d`, `12h`, `90m`, `45s` or `2w`.
fn age_of(text: &str) -> Result<Duration, WebError> {
    let bad = || {
        WebError::BadRequest(format!(
            "`{text}` is not an age: write a number and a unit, such as 30d, 12h, 90m, 45s or 2w"
        ))
    };
    let split = text.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = text.split_at(split);
    let number: i64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit.trim() {
        "s" => 1,
        "m" | "min" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    number
        .checked_mul(seconds)
        .filter(|s| *s <= 100 * 365 * 86_400)
        .map(Duration::seconds)
        .ok_or_else(bad)
}

/// The handler.
pub(crate) async fn page<C: WorkerConnection>(
    State(state): State<AppState<C>>,
    Extension(session): Extension<Session>,
    Query(query): Query<PruneQuery>,
) -> Result<Response, WebError> {
    if session.read_only {
        return Err(WebError::Forbidden(
            "this dashboard is read-only: it shows the operations but changes nothing".to_owned(),
        ));
    }
    let request = query.request(Utc::now())?;
    let count = match &request {
        Some(request) => {
            let filter = request.filter();
            Some(with_conn(&state, move |conn| Ok(filter.count(conn)?)).await?)
        }
        None => None,
    };
    let content = render(&session, &query, request.as_ref().zip(count));
    Ok(layout::page(&session, "Prune history", content).into_response())
}

fn render(session: &Session, query: &PruneQuery, counted: Option<(&PruneRequest, i64)>) -> Markup {
    let older_than = given(&query.older_than).unwrap_or("30d");
    let result = given(&query.result).unwrap_or("");
    html! {
        p { "Deletes finished operations from the table for good, in batches, whatever their queue. Pending and running work is never touched." }
        form #prune-query method="get" action=(session.link("/prune")) {
            label { span { "Finished more than" } input type="text" name="older_than" value=(older_than) required; span { "ago (30d, 12h, 90m)" } }
            label { span { "Type" } input type="text" name="operation_type" value=(given(&query.operation_type).unwrap_or("")); }
            label {
                span { "Result" }
                select name="result" {
                    option value="" selected[result.is_empty()] { "any" }
                    option value="successful" selected[result == "successful"] { "successful" }
                    option value="failed" selected[result == "failed"] { "failed" }
                }
            }
            button type="submit" { "Count" }
        }
        @if let Some((request, count)) = counted {
            section #prune-confirm {
                p.confirm {
                    strong { (count) } " finished operation" (if count == 1 { "" } else { "s" })
                    " finished before " (format::time(request.cutoff))
                    @if let Some(kind) = &request.operation_type { " of type " code { (kind) } }
                    @if let Some(result) = request.result { " with result " code { (result.as_str()) } }
                    " would be deleted."
                }
                @if count > 0 {
                    form #prune method="post" action=(session.link("/prune")) {
                        (layout::csrf_field(session))
                        input type="hidden" name="older_than" value=(older_than);
                        input type="hidden" name="before" value=(request.cutoff.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
                        input type="hidden" name="operation_type" value=(given(&query.operation_type).unwrap_or(""));
                        input type="hidden" name="result" value=(result);
                        button.danger type="submit" { "Delete them" }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::age_of;
    use chrono::Duration;

    #[test]
    fn ages_read_with_their_unit() {
        assert_eq!(age_of("30d").ok(), Some(Duration::days(30)));
        assert_eq!(age_of("90m").ok(), Some(Duration::minutes(90)));
        assert_eq!(age_of("2w").ok(), Some(Duration::weeks(2)));
        assert!(age_of("30").is_err());
        assert!(age_of("d").is_err());
        assert!(age_of("99999999999999d").is_err());
    }
}
