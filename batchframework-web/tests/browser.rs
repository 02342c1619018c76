//! The dashboard in a real browser, on each backend: headless Chromium, driven over WebDriver by
//! chromedriver, opens the dashboard mounted under `/admin/batch` as an application would mount
//! it, follows its links, fills in its forms and presses its buttons, and the database is checked
//! afterwards.
//!
//! The router's own tests send requests one at a time; these check what only a browser does with
//! the pages: relative and absolute links resolved under the mount point, forms posting the
//! CSRF token from the page with the cookie the browser kept, the redirect after an action
//! landing on a page that shows its message, the Content-Security-Policy letting the page's own
//! script and style load (a violation, or any other script error, fails the test), and the
//! page's 5-second refresh replacing parts of the page while the test uses them (so every wait
//! here tolerates an element going stale).
//!
//! Needs Chromium and chromedriver (Debian's `chromium` and `chromium-driver`): without them the
//! tests print `SKIPPED:` and pass, except under `CI=true`, where they fail. Screenshots of the
//! pages go to `$CARGO_TARGET_TMPDIR/screenshots/{backend}-{page}.png`, for a person to look at.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

/// The tests, in a module so that they are named `browser::<backend>::<test>` like the rest of
/// the suite (scripts/test selects a backend's tests by name).
mod browser {
    mod harness;

    use std::collections::BTreeSet;

    use batchframework_diesel::registry::{Registry, RunArgs};
    use batchframework_diesel::worker::WorkerConnection;
    use batchframework_diesel::workflow::Step;
    use batchframework_diesel::{admin, BatchOperation, Status};
    use batchframework_tests::{backend_tests, migrated, TestBackend, TestDatabase};
    use diesel::r2d2::{ConnectionManager, Pool};
    use fantoccini::{Client, Locator};

    use harness::{attr, blocking, find, press, screenshot, text, until, until_text, Browser};

    /// Where the tests mount the dashboard, as an application would. The overview is at
    /// `/admin/batch`, where the dashboard's own links point: axum 0.8's `nest` does not route
    /// `/admin/batch/` to the nested router's `/`.
    const MOUNT: &str = "/admin/batch";

    type DbPool<B> = Pool<ConnectionManager<<B as TestBackend>::Connection>>;

    /// A migrated throwaway database, seeded by `seed`, with the dashboard serving it under
    /// [`MOUNT`]; the dashboard's URL (`http://127.0.0.1:PORT/admin/batch`), and a pool for the
    /// test's own checks.
    fn dashboard<B: TestBackend, T>(
        browser: &Browser,
        seed: impl FnOnce(&mut B::Connection) -> T,
    ) -> (TestDatabase, DbPool<B>, String, T) {
        let (database, mut conn) = migrated::<B>();
        let seeded = seed(&mut conn);
        let pool = B::pool(&database, 4);
        let router =
            batchframework_web::router(pool.clone(), batchframework_web::Options::default());
        let app = application(axum::Router::new().nest(MOUNT, router));
        let base = format!("{}{MOUNT}", browser.serve(app));
        (database, pool, base, seeded)
    }

    /// `routes` with what every application serves: the icon browsers ask each origin for (a
    /// 404 there would be logged as an error, and it is the application's to serve, outside the
    /// dashboard's mount point).
    fn application(routes: axum::Router) -> axum::Router {
        routes.route(
            "/favicon.ico",
            axum::routing::get(|| async { axum::http::StatusCode::NO_CONTENT }),
        )
    }

    /// An operation that ran and failed with "file not found", as an action would leave it.
    fn failed<C: WorkerConnection>(conn: &mut C, kind: &str) -> BatchOperation {
        let mut op = BatchOperation::create_asynchronous(kind)
            .insert(conn)
            .unwrap();
        op.mark_as_running(conn).unwrap();
        op.finish_failed(conn, &"file not found").unwrap();
        op
    }

    /// An operation that ran and succeeded.
    fn succeeded<C: WorkerConnection>(conn: &mut C, kind: &str) -> BatchOperation {
        let mut op = BatchOperation::create_asynchronous(kind)
            .insert(conn)
            .unwrap();
        op.mark_as_running(conn).unwrap();
        op.finish(conn).unwrap();
        op
    }

    /// An operation waiting in `queue`.
    fn pending<C: WorkerConnection>(conn: &mut C, kind: &str, queue: &str) -> BatchOperation {
        BatchOperation::create_asynchronous(kind)
            .queue(queue)
            .insert(conn)
            .unwrap()
    }

    /// The `data-id` of every row of the operations table, when the page's URL has `query` in
    /// it: the list the browser shows for that query.
    async fn listed_ids(client: &Client, query: &str) -> Option<BTreeSet<i64>> {
        let url = client.current_url().await.ok()?;
        if !url.query().unwrap_or_default().contains(query) {
            return None;
        }
        let rows = client
            .find_all(Locator::Css("table#operations tbody tr[data-id]"))
            .await
            .ok()?;
        let mut ids = BTreeSet::new();
        for row in rows {
            ids.insert(row.attr("data-id").await.ok()??.parse().ok()?);
        }
        Some(ids)
    }

    /// Waits until the list shows exactly `expected` for a URL with `query` in it.
    async fn until_listed(client: &Client, query: &str, expected: &BTreeSet<i64>) {
        until(
            client,
            &format!("the list for `{query}` shows operations {expected:?}"),
            || async {
                Ok(listed_ids(client, query)
                    .await
                    .filter(|ids| ids == expected)
                    .map(|_| ()))
            },
        )
        .await;
    }

    /// The overview lists the queues and the latest failure; following the failure's link and
    /// pressing Retry queues it again, says so on the page, and the database agrees.
    fn retry_a_failure_from_the_overview<B: TestBackend>() {
        let Some(browser) = Browser::launch() else {
            return;
        };
        let (_database, pool, base, failed_id) = dashboard::<B, _>(&browser, |conn| {
            let failed = failed(conn, "import-users");
            pending(conn, "send-report", "default");
            pending(conn, "send-report", "default");
            pending(conn, "send-email", "emails");
            pending(conn, "send-email", "emails");
            succeeded(conn, "cleanup");
            failed.id()
        });
        browser.run(move |client| async move {
            client.goto(&base).await.unwrap();
            for queue in ["default", "emails"] {
                find(&client, &format!("table#queues tr[data-queue=\"{queue}\"]")).await;
            }
            let link =
                format!("section#failures a.operation-link[href$=\"/operations/{failed_id}\"]");
            let href = attr(&client, &link, "href").await;
            assert_eq!(
                href.as_deref(),
                Some(format!("{MOUNT}/operations/{failed_id}").as_str()),
                "the failure links under the mount point"
            );
            screenshot(&client, &format!("{}-overview", B::NAME)).await;

            press(&client, &link).await;
            until_text(&client, "#status", "finished").await;
            until_text(&client, "#result", "failed").await;
            assert!(
                client
                    .current_url()
                    .await
                    .unwrap()
                    .path()
                    .ends_with(&format!("{MOUNT}/operations/{failed_id}")),
                "the link led to {}",
                client.current_url().await.unwrap()
            );

            press(&client, "form#retry button").await;
            let flash = text(&client, ".flash").await;
            assert!(
                flash.contains(&format!("Operation {failed_id} is queued again")),
                "the message after the retry: {flash:?}"
            );
            until_text(&client, "#status", "unprocessed").await;
            // Pending again: it can be cancelled, not retried.
            find(&client, "form#cancel button").await;
            assert!(
                matches!(client.find(Locator::Css("form#retry")).await, Err(e) if e.is_no_such_element()),
                "a pending operation offers no Retry"
            );
            screenshot(&client, &format!("{}-operation", B::NAME)).await;

            let stored =
                blocking(|| BatchOperation::find(&mut pool.get().unwrap(), failed_id)).unwrap();
            assert_eq!(stored.status(), Status::Unprocessed);
        });
    }

    /// Pause and Resume on the overview change the queue's row and the stored pause.
    fn pause_and_resume_a_queue_from_the_overview<B: TestBackend>() {
        let Some(browser) = Browser::launch() else {
            return;
        };
        let (_database, pool, base, ()) = dashboard::<B, _>(&browser, |conn| {
            pending(conn, "send-report", "default");
            pending(conn, "send-email", "emails");
        });
        browser.run(move |client| async move {
            let emails = "table#queues tr[data-queue=\"emails\"]";
            let default = "table#queues tr[data-queue=\"default\"]";
            client.goto(&base).await.unwrap();
            until_text(&client, &format!("{emails} td.paused"), "").await;

            press(&client, &format!("{emails} form.pause-queue button")).await;
            find(&client, &format!("{emails} form.resume-queue button")).await;
            until_text(&client, &format!("{emails} td.paused"), "paused").await;
            until_text(&client, &format!("{default} td.paused"), "").await;
            find(&client, &format!("{default} form.pause-queue button")).await;
            let flash = text(&client, ".flash").await;
            assert!(
                flash.starts_with("Queue emails is paused"),
                "the message after the pause: {flash:?}"
            );
            let paused = blocking(|| admin::paused_queues(&mut pool.get().unwrap())).unwrap();
            assert_eq!(paused, ["emails"]);

            press(&client, &format!("{emails} form.resume-queue button")).await;
            until_text(&client, ".flash", "Queue emails is resumed.").await;
            find(&client, &format!("{emails} form.pause-queue button")).await;
            until_text(&client, &format!("{emails} td.paused"), "").await;
            let paused = blocking(|| admin::paused_queues(&mut pool.get().unwrap())).unwrap();
            assert!(paused.is_empty(), "still paused: {paused:?}");
        });
    }

    /// The list's filter form, filled in and submitted, narrows the list to what matches.
    fn filter_the_operations_list<B: TestBackend>() {
        let Some(browser) = Browser::launch() else {
            return;
        };
        let (_database, _pool, base, (finished, emails, all)) =
            dashboard::<B, _>(&browser, |conn| {
                let finished = [failed(conn, "import-users"), succeeded(conn, "cleanup")];
                let emails = [
                    pending(conn, "send-email", "emails"),
                    pending(conn, "send-email", "emails"),
                ];
                let mut running = pending(conn, "send-report", "default");
                running.mark_as_running(conn).unwrap();
                let others = [pending(conn, "send-report", "default"), running];
                let ids = |ops: &[BatchOperation]| {
                    ops.iter().map(BatchOperation::id).collect::<BTreeSet<_>>()
                };
                let all: BTreeSet<i64> = [ids(&finished), ids(&emails), ids(&others)]
                    .into_iter()
                    .flatten()
                    .collect();
                (ids(&finished), ids(&emails), all)
            });
        browser.run(move |client| async move {
            client.goto(&format!("{base}/operations")).await.unwrap();
            until_listed(&client, "", &all).await;
            screenshot(&client, &format!("{}-operations", B::NAME)).await;

            let status = find(&client, "form#filters select[name=status]").await;
            status.select_by_value("finished").await.unwrap();
            press(&client, "form#filters button[type=submit]").await;
            until_listed(&client, "status=finished", &finished).await;
            // The form shows the filter it was submitted with.
            let chosen = find(&client, "form#filters select[name=status]").await;
            assert_eq!(
                chosen.prop("value").await.unwrap().as_deref(),
                Some("finished")
            );

            // Back to any status, and a queue typed in.
            find(&client, "form#filters select[name=status]")
                .await
                .select_by_value("")
                .await
                .unwrap();
            find(&client, "form#filters input[name=queue]")
                .await
                .send_keys("emails")
                .await
                .unwrap();
            press(&client, "form#filters button[type=submit]").await;
            until_listed(&client, "queue=emails", &emails).await;
        });
    }

    /// A workflow step waiting for its dependencies says so and links to its workflow, whose
    /// page shows its children's progress.
    fn follow_a_waiting_step_to_its_workflow<B: TestBackend>() {
        let Some(browser) = Browser::launch() else {
            return;
        };
        let (_database, _pool, base, (parent, waiting)) = dashboard::<B, _>(&browser, |conn| {
            let registry = Registry::<B::Connection>::builder()
                .group_with("import", |g| {
                    g.asynchronous()
                        .action_fn("run", |_| Ok(serde_json::Value::Null))
                })
                .build()
                .unwrap();
            let workflow = registry
                .workflow("nightly-import")
                .step(Step::new("download", "import", RunArgs::new()))
                .step(Step::new("users", "import", RunArgs::new()).after(["download"]))
                .step(Step::new("report", "import", RunArgs::new()).after(["users"]))
                .enqueue(conn)
                .unwrap();
            let mut download =
                BatchOperation::find(conn, workflow.step_id("download").unwrap()).unwrap();
            download.mark_as_running(conn).unwrap();
            download.finish(conn).unwrap();
            (workflow.id(), workflow.step_id("report").unwrap())
        });
        browser.run(move |client| async move {
            client
                .goto(&format!("{base}/operations/{waiting}"))
                .await
                .unwrap();
            until_text(&client, ".badge.waiting", "waiting for its dependencies").await;
            screenshot(&client, &format!("{}-waiting-step", B::NAME)).await;
            press(
                &client,
                &format!("dl.fields a[href$=\"/operations/{parent}\"]"),
            )
            .await;
            until(
                &client,
                "the workflow's children read 1 of 3 finished",
                || async {
                    let children = client.find(Locator::Css("#children")).await?.text().await?;
                    Ok(children
                        .contains("1 of 3 finished · 1 succeeded · 0 failed")
                        .then_some(()))
                },
            )
            .await;
            let bar = find(&client, "#children progress").await;
            assert_eq!(bar.attr("value").await.unwrap().as_deref(), Some("1"));
            assert_eq!(bar.attr("max").await.unwrap().as_deref(), Some("3"));
            screenshot(&client, &format!("{}-workflow", B::NAME)).await;
        });
    }

    backend_tests!(
        retry_a_failure_from_the_overview,
        pause_and_resume_a_queue_from_the_overview,
        filter_the_operations_list,
        follow_a_waiting_step_to_its_workflow,
    );

    /// The harness's check for script errors sees one: a page that logs an error fails it, so
    /// that the dashboard tests' clean logs mean something.
    #[test]
    fn the_harness_sees_script_errors() {
        let Some(browser) = Browser::launch() else {
            return;
        };
        let page = axum::routing::get(|| async {
            axum::response::Html(
                "<!doctype html><title>t</title><script>console.error('boom')</script>",
            )
        });
        let origin = browser.serve(application(axum::Router::new().route("/", page)));
        browser.run(move |client| async move {
            client.goto(&origin).await.unwrap();
            let seen = std::sync::Mutex::new(Vec::new());
            until(
                &client,
                "the browser log has console.error's message",
                || async {
                    let errors = harness::script_errors(&client).await;
                    let mut seen = seen.lock().unwrap();
                    seen.extend(errors);
                    Ok(seen.iter().any(|e| e.contains("boom")).then_some(()))
                },
            )
            .await;
        });
    }
}
