//! The plans of the statements whose cost must not grow with the table: the claim's due read,
//! the idle poll, the lost-worker read and the operators' questions. With 100,000 delayed and
//! 100,000 finished operations present (and a few due and running), each must read the index
//! meant for it and nothing it then throws away, so that a backlog of delayed work or a long
//! history costs it nothing. These fail when a plan regresses (an index dropped or no longer
//! usable, a predicate the planner can no longer match), not when the machine is slow.

use batchframework_tests::per_backend;

/// Delayed operations in the table, filled on the server in one statement.
const BACKLOG: u32 = 100_000;
/// Finished operations in the table (the digits' cross join below makes at most 100,000 rows).
const HISTORY: u32 = 100_000;

per_backend! {
    use batchframework_diesel::__private::query_plans;
    use batchframework_tests::migrated;
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    #[test]
    fn each_statement_reads_its_index_whatever_the_backlog() {
        let (_db, mut conn) = migrated::<B>();
        let backend = <B as batchframework_tests::TestBackend>::NAME;
        let plans = |conn: &mut Conn| {
            query_plans::<<Conn as Connection>::Backend>(conn, "default", "noop", chrono::Utc::now())
                .unwrap()
        };
        conn.batch_execute(&super::fill_sql(backend)).unwrap();
        // The claim is planned right from the first operation after the migrations, before the
        // table has statistics of its backlog.
        let unanalyzed: Vec<String> = plans(&mut conn)
            .iter()
            .filter(|(statement, _)| ["claim", "idle poll", "lost", "group commit"].contains(statement))
            .flat_map(|(statement, plan)| super::check(backend, statement, plan))
            .collect();
        assert!(unanalyzed.is_empty(), "before ANALYZE:\n{}", unanalyzed.join("\n\n"));
        // Statistics, and on PostgreSQL the visibility map that index-only scans rely on (what
        // autovacuum keeps up to date); VACUUM runs outside any transaction, on its own.
        let analyze = match backend {
            "postgres" => "VACUUM ANALYZE batchframework_batchoperation",
            "mysql" => "ANALYZE TABLE batchframework_batchoperation",
            _ => "ANALYZE",
        };
        conn.batch_execute(analyze).unwrap();
        let plans = plans(&mut conn);
        let problems: Vec<String> = plans
            .iter()
            .flat_map(|(statement, plan)| super::check(backend, statement, plan))
            .collect();
        assert!(problems.is_empty(), "{}", problems.join("\n\n"));
        assert_eq!(plans.len(), 20);
    }
}

/// The statements that fill the table: `HISTORY` finished operations (1% failed, finished over
/// the last 30 days), `BACKLOG` delayed ones (due in a day or two), 10 immediate ones, 10
/// delayed ones already due and 10 running ones, all of type `noop` on queue `default`.
fn fill_sql(backend: &str) -> String {
    let columns = "(created_datetime, started_running_datetime, finished_datetime, operationtype, \
                   status, result, input_data_json, output_data_json, queue, priority, run_after, \
                   max_attempts, locked_by, heartbeat_datetime)";
    assert!(BACKLOG.max(HISTORY) <= 100_000);
    // Numbers 1..=n from the server: a series on PostgreSQL, a cross join of digits elsewhere
    // (portable to MySQL, MariaDB and SQLite, with no recursion limit in the way).
    let series = |n: u32| match backend {
        "postgres" => format!("FROM generate_series(1, {n}) AS s(i)"),
        _ => {
            let digit = "(SELECT 0 AS d UNION ALL SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 \
                         UNION ALL SELECT 4 UNION ALL SELECT 5 UNION ALL SELECT 6 UNION ALL \
                         SELECT 7 UNION ALL SELECT 8 UNION ALL SELECT 9)";
            format!(
                "FROM (SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 1 AS i \
                 FROM {digit} a, {digit} b, {digit} c, {digit} e, {digit} f) AS s WHERE i <= {n}"
            )
        }
    };
    // The current instant, and the instant `seconds` (an SQL expression) before or after it.
    type Shift = fn(&str) -> String;
    let (now, ago, ahead): (&str, Shift, Shift) = match backend {
        "postgres" => (
            "now()",
            |s| format!("now() - ({s}) * interval '1 second'"),
            |s| format!("now() + ({s}) * interval '1 second'"),
        ),
        "mysql" => (
            "UTC_TIMESTAMP(6)",
            |s| format!("UTC_TIMESTAMP(6) - INTERVAL ({s}) SECOND"),
            |s| format!("UTC_TIMESTAMP(6) + INTERVAL ({s}) SECOND"),
        ),
        _ => (
            "strftime('%Y-%m-%d %H:%M:%f000', 'now')",
            |s| format!("strftime('%Y-%m-%d %H:%M:%f000', 'now', '-' || ({s}) || ' seconds')"),
            |s| format!("strftime('%Y-%m-%d %H:%M:%f000', 'now', '+' || ({s}) || ' seconds')"),
        ),
    };
    let insert = |values: String, n: u32| {
        format!(
            "INSERT INTO batchframework_batchoperation {columns} SELECT {values} {};",
            series(n)
        )
    };
    let finished_at = ago("i * 8");
    let finished = insert(
        format!(
            "{finished_at}, {finished_at}, {finished_at}, 'noop', 'finished', \
             CASE WHEN i % 100 = 0 THEN 'failed' ELSE 'successful' END, '{{}}', '{{}}', \
             'default', 0, NULL, 1, NULL, NULL"
        ),
        HISTORY,
    );
    let delayed = insert(
        format!(
            "{now}, NULL, NULL, 'noop', 'unprocessed', 'not-available', '{{}}', '{{}}', \
             'default', 0, {}, 1, NULL, NULL",
            ahead("86400 + i")
        ),
        BACKLOG,
    );
    let immediate = insert(
        format!(
            "{now}, NULL, NULL, 'noop', 'unprocessed', 'not-available', '{{}}', '{{}}', \
             'default', 0, NULL, 1, NULL, NULL"
        ),
        10,
    );
    let due = insert(
        format!(
            "{now}, NULL, NULL, 'noop', 'unprocessed', 'not-available', '{{}}', '{{}}', \
             'default', 0, {}, 1, NULL, NULL",
            ago("i")
        ),
        10,
    );
    let running = insert(
        format!(
            "{now}, {now}, NULL, 'noop', 'running', 'not-available', '{{}}', '{{}}', \
             'default', 0, NULL, 1, 'a-worker', {now}"
        ),
        10,
    );
    [finished, delayed, immediate, due, running].join("\n")
}

/// The indexes each statement must read, per backend: each entry is a list of alternatives,
/// one of which the plan must name. MySQL/MariaDB have no partial indexes: one `due` index
/// serves both halves of the claim. For due delayed work, `active` (queue, status, run_after)
/// serves as well as `due_later` (type, run_after): both hold only what is due in that range.
fn intended(backend: &str, statement: &str) -> Vec<&'static [&'static str]> {
    const DUE_NOW: &[&str] = &["batchframework_batchoperation_due_now_idx"];
    const DUE_LATER: &[&str] = &[
        "batchframework_batchoperation_due_later_idx",
        "batchframework_batchoperation_active_idx",
    ];
    let mysql = backend == "mysql";
    match statement {
        "claim" | "idle poll" if mysql => vec![&["batchframework_batchoperation_due_idx"]],
        "claim" | "idle poll" => vec![DUE_NOW, DUE_LATER],
        // Either holds only running operations under that condition.
        // Its rows by id in the primary key (SQLite's rowid), or among the running operations
        // (as many as the workers hold); never a scan of every pending one.
        // (`active` leads with the status: its `running` range is the running operations too.)
        "group commit" => vec![&[
            "batchframework_batchoperation_pkey",
            "PRIMARY",
            "INTEGER PRIMARY KEY",
            "batchframework_batchoperation_running_idx",
            "batchframework_batchoperation_active_idx",
        ]],
        "lost" => vec![&[
            "batchframework_batchoperation_running_idx",
            "batchframework_batchoperation_active_idx",
        ]],
        "next pending queue" | "next running queue" | "count immediate" | "count due delayed"
        | "count not yet due" | "oldest immediate" | "oldest delayed" => {
            vec![&["batchframework_batchoperation_active_idx"]]
        }
        // Either holds the running operations alone (as many as the workers hold).
        "count running" => vec![&[
            "batchframework_batchoperation_active_idx",
            "batchframework_batchoperation_running_idx",
        ]],
        "next finished queue" | "recent successes" => {
            vec![&["batchframework_batchoperation_finished_idx"]]
        }
        "failures in the last hour" | "latest failures" => {
            vec![&["batchframework_batchoperation_failed_idx"]]
        }
        // By id, backwards: the primary key, or the type's index (whose entries end with the id).
        // SQLite reads its primary key, the rowid, as `SCAN <table>` (in rowid order).
        "newest of a type" => vec![&[
            "batchframework_batchoperation_pkey",
            "PRIMARY",
            "SCAN batchframework_batchoperation",
            "batchframework_batchoperation_operationtype_idx",
        ]],
        "created in the last hour" => vec![&["batchframework_batchoperation_created_idx"]],
        // MySQL/MariaDB: one index on the parent alone, which claims and finishes never touch.
        "failed children" | "cancel children" if mysql => {
            vec![&["batchframework_batchoperation_parent_idx"]]
        }
        "failed children" => vec![&["batchframework_batchoperation_failed_children_idx"]],
        "cancel children" => vec![&["batchframework_batchoperation_unfinished_children_idx"]],
        other => panic!("no intended index for {other}"),
    }
}

/// What is wrong with `plan`, if anything.
fn check(backend: &str, statement: &str, plan: &str) -> Vec<String> {
    // MySQL/MariaDB answer the walk through the queues (a `MIN` under an equality on the
    // status) while planning, with one index lookup: no table is read at all.
    let answered_while_planning = ["Select tables optimized away", "No matching min/max row"];
    if backend == "mysql"
        && statement.starts_with("next ")
        && answered_while_planning
            .iter()
            .any(|message| plan.contains(message))
    {
        return Vec::new();
    }
    let mut problems: Vec<String> = intended(backend, statement)
        .into_iter()
        .filter(|alternatives| !alternatives.iter().any(|index| plan.contains(index)))
        .map(|alternatives| format!("{backend}: the {statement} reads none of {alternatives:?}"))
        .collect();
    problems.extend(match backend {
        "postgres" => check_postgres(statement, plan),
        "mysql" => check_mysql(statement, plan),
        _ => check_sqlite(statement, plan),
    });
    if !problems.is_empty() {
        problems.push(format!("the plan of the {statement}:\n{plan}"));
    }
    problems
}

/// No sequential scan, and no node that removed rows by filter: every row read was wanted.
fn check_postgres(statement: &str, plan: &str) -> Vec<String> {
    let plan: serde_json::Value = serde_json::from_str(plan).unwrap();
    let mut problems = Vec::new();
    let mut nodes = vec![&plan[0]["Plan"]];
    while let Some(node) = nodes.pop() {
        if node["Node Type"] == "Seq Scan" {
            problems.push(format!("postgres: the {statement} scans the table"));
        }
        let removed = node["Rows Removed by Filter"].as_u64().unwrap_or(0);
        // The group commit's filter is its fence: rows it finds and does not write (here ids of
        // operations it does not hold) are what fencing is for.
        if removed > 0 && statement != "group commit" {
            problems.push(format!(
                "postgres: the {statement} removes {removed} rows by filter"
            ));
        }
        if let Some(children) = node["Plans"].as_array() {
            nodes.extend(children);
        }
    }
    problems
}

/// Every read of the table through an index, with a row estimate that is not the backlog's
/// size (where the statement does not stop after a few rows by itself).
fn check_mysql(statement: &str, plan: &str) -> Vec<String> {
    let plan: serde_json::Value = serde_json::from_str(plan).unwrap();
    let mut problems = Vec::new();
    let mut values = vec![&plan];
    while let Some(value) = values.pop() {
        let ours =
            |table: &serde_json::Value| table["table_name"] == "batchframework_batchoperation";
        if let Some(table) = value.get("table").filter(|table| ours(table)) {
            if table["access_type"] == "ALL" {
                problems.push(format!("mysql: the {statement} scans the table"));
            }
            let rows = table["rows"].as_u64().unwrap_or(0);
            // The counts stop one past their limit and the lists after 50 rows, whatever the
            // estimate of the range they read.
            let bounded = !statement.starts_with("count ")
                && statement != "recent successes"
                && !matches!(statement, "newest of a type" | "created in the last hour");
            if bounded && rows >= u64::from(BACKLOG) / 10 {
                problems.push(format!(
                    "mysql: the {statement} expects to read {rows} rows"
                ));
            }
        }
        match value {
            serde_json::Value::Object(map) => values.extend(map.values()),
            serde_json::Value::Array(items) => values.extend(items),
            _ => {}
        }
    }
    problems
}

/// No scan of the table itself (a scan of a partial index holds only what it should), and no
/// sort of what a read of the table found (which would grow with the backlog).
fn check_sqlite(statement: &str, plan: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut lines = plan.lines().peekable();
    while let Some(line) = lines.next() {
        if !line.starts_with("SCAN batchframework_batchoperation")
            && !line.starts_with("SEARCH batchframework_batchoperation")
        {
            continue;
        }
        // SQLite reads its primary key, the rowid, as a `SCAN` of the table in rowid order.
        let rowid_order = statement == "newest of a type";
        if line.starts_with("SCAN") && !line.contains("USING") && !rowid_order {
            problems.push(format!("sqlite: the {statement} scans the table"));
        }
        // The lost-worker read may sort the running operations of its queues (as many as the
        // workers hold) by heartbeat; any other sort grows with the backlog.
        let sorted = lines
            .peek()
            .is_some_and(|next| next.contains("TEMP B-TREE"));
        if sorted && statement != "lost" {
            problems.push(format!("sqlite: the {statement} sorts what it read"));
        }
    }
    problems
}
