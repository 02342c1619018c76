//! `status`: the queues at a glance.

use batchframework_diesel::admin::{self, Count, QueueOverview, RecentCounts};
use batchframework_diesel::overview::estimated_total;
use batchframework_diesel::BatchConnection;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::duration::format_duration;
use crate::error::CliError;
use crate::output::{json, Cell, Format, Paint, Table};

/// The JSON document.
#[derive(Serialize)]
struct Status {
    limit: u64,
    estimated_total: Option<i64>,
    queues: Vec<QueueJson>,
}

/// One queue in the JSON document.
#[derive(Serialize)]
struct QueueJson {
    queue: String,
    paused: bool,
    due: CountJson,
    delayed: CountJson,
    running: CountJson,
    failed: RecentJson,
    succeeded: RecentJson,
    oldest_due: Option<DateTime<Utc>>,
    lag_seconds: Option<f64>,
    finished_per_minute: PerMinute,
}

/// `{"value": 1000, "exact": false}` for 1000+.
#[derive(Serialize)]
struct CountJson {
    value: u64,
    exact: bool,
}

/// Counts of the last hour and day.
#[derive(Serialize)]
struct RecentJson {
    last_hour: CountJson,
    last_day: CountJson,
}

/// Finished operations per minute.
#[derive(Serialize)]
struct PerMinute {
    #[serde(rename = "5m")]
    five_minutes: f64,
    #[serde(rename = "60m")]
    sixty_minutes: f64,
}

impl From<Count> for CountJson {
    fn from(count: Count) -> Self {
        CountJson {
            value: count.value(),
            exact: count.is_exact(),
        }
    }
}

impl From<&RecentCounts> for RecentJson {
    fn from(counts: &RecentCounts) -> Self {
        RecentJson {
            last_hour: counts.last_hour.into(),
            last_day: counts.last_day.into(),
        }
    }
}

/// Prints one row per queue, and the estimated size of the table.
pub(super) fn run<C: BatchConnection>(
    conn: &mut C,
    format: Format,
    limit: u64,
) -> Result<String, CliError> {
    let queues = admin::queue_overview(conn, limit)?;
    let total = estimated_total(conn)?;
    let now = Utc::now();
    if format.json {
        return json(&Status {
            limit,
            estimated_total: total,
            queues: queues.iter().map(|q| queue_json(q, now)).collect(),
        });
    }
    let mut text = if queues.is_empty() {
        "no queue has pending, running or recent operations\n".to_owned()
    } else {
        let mut table = Table::new(&[
            "QUEUE",
            "PAUSED",
            "DUE>",
            "DELAYED>",
            "RUNNING>",
            "FAILED 1h/1d>",
            "SUCCEEDED 1h/1d>",
            "LAG>",
            "DONE/MIN 5m/60m>",
        ]);
        for queue in &queues {
            table.row(queue_row(queue, now));
        }
        format.table(&table)
    };
    text.push_str(&match total {
        Some(total) => {
            format!("operations in the table: about {total} (the database's estimate)\n")
        }
        None => "operations in the table: not estimated yet (the database has no statistics)\n"
            .to_owned(),
    });
    Ok(text)
}

fn queue_json(queue: &QueueOverview, now: DateTime<Utc>) -> QueueJson {
    QueueJson {
        queue: queue.queue.clone(),
        paused: queue.paused,
        due: queue.due.into(),
        delayed: queue.delayed.into(),
        running: queue.running.into(),
        failed: (&queue.failed).into(),
        succeeded: (&queue.succeeded).into(),
        oldest_due: queue.oldest_due,
        lag_seconds: queue
            .lag(now)
            .map(|lag| lag.num_milliseconds() as f64 / 1000.0),
        finished_per_minute: PerMinute {
            five_minutes: queue.finished_per_minute_5m,
            sixty_minutes: queue.finished_per_minute_60m,
        },
    }
}

fn queue_row(queue: &QueueOverview, now: DateTime<Utc>) -> Vec<Cell> {
    let count = |count: Count, paint: Paint| {
        if count.value() == 0 {
            Cell::plain("0")
        } else {
            Cell::painted(count.to_string(), paint)
        }
    };
    let failed = format!("{}/{}", queue.failed.last_hour, queue.failed.last_day);
    let failed = if queue.failed.last_day.value() == 0 {
        Cell::plain(failed)
    } else {
        Cell::painted(failed, Paint::Red)
    };
    vec![
        Cell::plain(queue.queue.clone()),
        if queue.paused {
            Cell::painted("yes", Paint::Yellow)
        } else {
            Cell::plain("no")
        },
        Cell::plain(queue.due.to_string()),
        Cell::plain(queue.delayed.to_string()),
        count(queue.running, Paint::Yellow),
        failed,
        Cell::plain(format!(
            "{}/{}",
            queue.succeeded.last_hour, queue.succeeded.last_day
        )),
        Cell::opt(queue.lag(now).map(format_duration)),
        Cell::plain(format!(
            "{:.2}/{:.2}",
            queue.finished_per_minute_5m, queue.finished_per_minute_60m
        )),
    ]
}
