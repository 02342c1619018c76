//! One-at-a-time enqueue on PostgreSQL, side by side: `registry.run` of an asynchronous group
//! against a plain Diesel `INSERT ... RETURNING id` of the same row into the same table, and
//! that insert again with the new-work trigger disabled, to show what the trigger (the
//! notification that wakes idle workers) costs. Each statement commits on its own
//! (autocommit), as an application enqueueing from a request handler does. The variants take
//! turns, round after round, so a slow moment of the machine falls on all of them.

use std::time::Instant;

use batchframework_diesel::registry::{Registry, RunArgs};
use batchframework_diesel::schema::batchframework_batchoperation as operations;
use batchframework_diesel::UtcDateTime;
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::PgConnection;

use crate::AnyError;

/// The row `registry.run` writes for a queued no-op with no input, as a plain insert.
#[derive(Insertable)]
#[diesel(table_name = operations)]
struct PlainRow<'a> {
    created_datetime: UtcDateTime,
    operationtype: &'a str,
    status: &'a str,
    result: &'a str,
    input_data_json: &'a str,
    output_data_json: &'a str,
    queue: &'a str,
    priority: i32,
    max_attempts: i32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Variant {
    Registry,
    Plain,
    PlainWithoutTrigger,
}

impl Variant {
    fn label(self) -> &'static str {
        match self {
            Variant::Registry => "`registry.run` (asynchronous group)",
            Variant::Plain => "plain Diesel `INSERT ... RETURNING id`, same row",
            Variant::PlainWithoutTrigger => "the same insert, new-work trigger disabled",
        }
    }
}

const TRIGGER: &str = "batchframework_notify_inserted_work";

/// Prints one table row per variant: the median rate of `rounds` rounds of `per_round`
/// enqueues each, and its ratio to the plain insert.
pub(crate) fn compare(
    conn: &mut PgConnection,
    registry: &Registry<PgConnection>,
    rounds: usize,
    per_round: usize,
) -> Result<(), AnyError> {
    let template = registry.run(conn, "noop", RunArgs::new())?.operation;
    let (queue, max_attempts) = (template.queue().to_owned(), template.max_attempts());
    let variants = [
        Variant::Registry,
        Variant::Plain,
        Variant::PlainWithoutTrigger,
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..rounds {
        for (index, &variant) in variants.iter().enumerate() {
            if variant == Variant::PlainWithoutTrigger {
                conn.batch_execute(&format!(
                    "ALTER TABLE batchframework_batchoperation DISABLE TRIGGER {TRIGGER}"
                ))?;
            }
            let started = Instant::now();
            for _ in 0..per_round {
                match variant {
                    Variant::Registry => {
                        registry.run(conn, "noop", RunArgs::new())?;
                    }
                    Variant::Plain | Variant::PlainWithoutTrigger => {
                        let row = PlainRow {
                            created_datetime: UtcDateTime(chrono::Utc::now()),
                            operationtype: "noop",
                            status: "unprocessed",
                            result: "not-available",
                            input_data_json: template.input_data_json(),
                            output_data_json: "",
                            queue: &queue,
                            priority: 0,
                            max_attempts,
                        };
                        let _id: i64 = diesel::insert_into(operations::table)
                            .values(&row)
                            .returning(operations::id)
                            .get_result(conn)?;
                    }
                }
            }
            let took = started.elapsed();
            if variant == Variant::PlainWithoutTrigger {
                conn.batch_execute(&format!(
                    "ALTER TABLE batchframework_batchoperation ENABLE TRIGGER {TRIGGER}"
                ))?;
            }
            rates[index].push(per_round as f64 / took.as_secs_f64());
        }
    }
    let medians: Vec<f64> = rates.iter_mut().map(|r| median(r)).collect();
    let plain = medians[1];
    for (variant, rate) in variants.iter().zip(&medians) {
        println!(
            "| enqueue one at a time: {} ({rounds} rounds of {per_round}, median) | {rate:.0} ops/s ({:.2}× the plain insert) |",
            variant.label(),
            rate / plain
        );
    }
    Ok(())
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or_default()
}
