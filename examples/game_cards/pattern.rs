// The 5-query pattern, written once and compiled for each backend's connection type `Conn`
// (included by main.rs into one module per backend).

use crate::models::*;
use crate::{Progress, Report};
use batchframework_diesel::{bulk_insert, bulk_insert_tracked_or_fail, BatchOperation};
use diesel::prelude::*;
use diesel_migrations::MigrationHarness;

/// Creates the tables if needed and a game to deal into; returns the game's id.
pub(crate) fn set_up(conn: &mut Conn) -> Result<i64, crate::AnyError> {
    batchframework_diesel::run_migrations(conn)?;
    conn.run_pending_migrations(MIGRATIONS)?;
    diesel::insert_into(games::table)
        .values(NewGame { name: "chess" })
        .execute(conn)?;
    Ok(games::table.select(diesel::dsl::max(games::id)).first::<Option<i64>>(conn)?.unwrap_or(0))
}

/// The Game/Player/Card example: one operation, `players` players, one card each.
pub(crate) fn deal(conn: &mut Conn, game_id: i64, players: usize, progress: &Progress) -> Result<Report, crate::AnyError> {
    // 1. INSERT the operation, about the game.
    let mut op = BatchOperation::create_synchronous("deal-cards")
        .context_object(&batchframework_diesel::ContextRef::new("games", game_id))
        .input(&serde_json::json!({ "players": players }))
        .insert(conn)?;

    // 2. Bulk insert the players, each tagged with the operation's id. On failure the
    //    operation is recorded as failed (that record survives the insert's rollback).
    let new_players = (0..players).map(|i| NewPlayer {
        game_id,
        name: format!("player{i}"),
        batchoperation_id: None, // set by the bulk insert
    });
    bulk_insert_tracked_or_fail(conn, &mut op, progress.wrap("players", new_players))?;

    // 3. Select the created players back by operation: one query, whatever their number,
    //    streamed row by row (on PostgreSQL in row-by-row mode), building each player's card
    //    as it arrives; no list of all players is held.
    let mut deck = crate::Deck::default();
    let cards: Vec<NewCard> = Player::in_batch(&op)
        .select(Player::as_select())
        .order(players::id)
        .load_iter::<Player, Loading>(conn)?
        .map(|player| {
            player.map(|player| NewCard {
                player_id: player.id,
                cardid: deck.draw(),
            })
        })
        .collect::<QueryResult<_>>()?;
    let created = cards.len();

    // 4. Bulk insert one card per created player.
    let dealt = bulk_insert(conn, progress.wrap("cards", cards.into_iter()))?;

    // 5. UPDATE the operation to finished.
    op.finish_with_output(conn, &serde_json::json!({ "players": created, "cards": dealt }))?;
    Ok(Report { operation: op, players: created, cards: dealt })
}
