//! Writing actions as an application does: closures typed by the registry's connection (no
//! annotations, Diesel calls on `ctx.conn()`), the connection and the operation used together,
//! and ordinary errors turned into recorded failures with `?`.

use batchframework_diesel::registry::{ActionError, ActionGroupResult, Registry, RunArgs};
use serde_json::json;

/// Every kind of error an action meets converts with `?`, keeping its message and causes.
#[test]
fn ordinary_errors_convert_into_action_errors() {
    fn boxed() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        Err("the file is gone".into())
    }
    fn with_anyhow() -> anyhow::Result<()> {
        Err(anyhow::anyhow!("no such user").context("while importing"))
    }
    fn with_io() -> std::io::Result<()> {
        Err(std::io::Error::other("disk full"))
    }
    fn action(which: u8) -> Result<(), ActionError> {
        match which {
            0 => boxed()?,
            1 => with_anyhow()?,
            2 => with_io()?,
            3 => Err("plain text")?,
            _ => return Err(ActionError::msg(format_args!("bad step {which}"))),
        }
        Ok(())
    }

    let error = action(0).unwrap_err();
    assert_eq!(error.data(), &json!("the file is gone"));
    let error = action(1).unwrap_err();
    assert_eq!(error.data(), &json!("while importing"));
    assert_eq!(
        error.traceback(),
        "while importing\ncaused by: no such user"
    );
    assert_eq!(action(2).unwrap_err().data(), &json!("disk full"));
    assert_eq!(action(3).unwrap_err().data(), &json!("plain text"));
    let error = action(9).unwrap_err();
    assert_eq!(error.data(), &json!("bad step 9"));
    assert_eq!(error.to_string(), "bad step 9");
}

/// A registry for a concrete connection type builds with closures that call Diesel methods on
/// their connection, with no type written on `ctx`: the compiler would refuse this file
/// otherwise.
#[cfg(feature = "postgres")]
#[test]
fn closures_on_a_typed_registry_need_no_annotations() {
    use diesel::connection::SimpleConnection;
    use diesel::Connection;

    let registry = Registry::<diesel::PgConnection>::builder()
        .group_with("vacuum", |group| {
            group.action_fn("analyze", |ctx| {
                ctx.conn()
                    .transaction(|conn| conn.batch_execute("ANALYZE"))?;
                Ok(json!("analyzed"))
            })
        })
        .build()
        .unwrap();
    assert_eq!(registry.operation_types().collect::<Vec<_>>(), ["vacuum"]);
}

batchframework_tests::per_backend! {
    use crate::bulk::{create_tables, new_players, Player};
    use batchframework_diesel::{bulk_insert_tracked, OperationResult};
    use batchframework_tests::migrated;
    use diesel::prelude::*;

    /// An action bulk-inserts tracked rows with its own operation and selects them back, and a
    /// second one fails through `?` on a Diesel error: its error is recorded, the first
    /// action's rows stay.
    #[test]
    fn an_action_uses_its_connection_and_its_operation_together() {
        let (_db, mut conn) = migrated::<B>();
        create_tables::<B>(&mut conn);
        let registry = Registry::<Conn>::builder()
            .group_with("deal", |group| {
                group
                    .action_fn("players", |ctx| {
                        let op = ctx.operation();
                        bulk_insert_tracked(ctx.conn(), op, new_players(1, 3))?;
                        let created: Vec<Player> = Player::in_batch(op)
                            .select(Player::as_select())
                            .load(ctx.conn())?;
                        Ok(json!(created.len()))
                    })
                    .action_fn("missing-table", |ctx| {
                        ctx.conn().transaction(|conn| {
                            diesel::sql_query("DELETE FROM no_such_table").execute(conn)
                        })?;
                        Ok(json!("unreachable"))
                    })
            })
            .build()
            .unwrap();

        let info = registry.run(&mut conn, "deal", RunArgs::new()).unwrap();
        assert_eq!(info.operation.result(), OperationResult::Failed);
        let result: ActionGroupResult = info.result.unwrap();
        assert_eq!(result.results[0].success_output_data, Some(json!(3)));
        assert!(result.results[1].failed);
        let error = result.results[1].errordata.as_ref().unwrap();
        assert!(error.traceback.contains("no_such_table"), "{error:?}");
        let tagged = Player::in_batch(&info.operation).count().get_result::<i64>(&mut conn);
        assert_eq!(tagged.unwrap(), 3);
    }
}
