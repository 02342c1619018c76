// The four variants, compiled once per backend (included by main.rs, which defines `Conn`,
// `SCHEMA`, `DROP`, `MAX_BINDS` and `insert_returning_ids` for that backend).

use std::time::{Duration, Instant};

use batchframework_diesel::{bulk_insert, bulk_insert_tracked, BatchOperation};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;

use crate::models::*;
use crate::{AnyError, Variant};

/// Recreates the tables, runs `variant` for `n` players and checks what it inserted.
pub(crate) fn run(conn: &mut Conn, url: &str, variant: Variant, n: usize) -> Result<Duration, AnyError> {
    batchframework_diesel::run_migrations(conn)?;
    let _ = conn.batch_execute(DROP); // absent on the first run
    conn.batch_execute(SCHEMA)?;
    diesel::insert_into(games::table)
        .values(games::name.eq("bench"))
        .execute(conn)?;
    let game: i64 = games::table.select(games::id).first(conn)?;

    let timed = |conn: &mut Conn, f: fn(&mut Conn, i64, usize) -> Result<(), AnyError>| {
        let started = Instant::now();
        f(conn, game, n).map(|()| started.elapsed())
    };
    let took = match variant {
        Variant::Naive => timed(conn, naive)?,
        Variant::Diesel => timed(conn, diesel_batches)?,
        Variant::Pattern => timed(conn, pattern)?,
        Variant::Floor => floor(conn, url, game, n)?,
    };

    let players: i64 = players::table.count().get_result(conn)?;
    let cards: i64 = cards::table.count().get_result(conn)?;
    if (players, cards) != (n as i64, n as i64) {
        return Err(format!("{variant:?} inserted {players} players and {cards} cards, not {n}").into());
    }
    Ok(took)
}

fn player(game: i64, i: usize) -> PlainPlayer {
    PlainPlayer { game_id: game, name: format!("player{i}") }
}

/// (a) One INSERT per player, reading its id back, and one per card.
fn naive(conn: &mut Conn, game: i64, n: usize) -> Result<(), AnyError> {
    conn.transaction::<_, AnyError, _>(|conn| {
        for i in 0..n {
            let id = insert_returning_ids(conn, &[player(game, i)])?[0];
            diesel::insert_into(cards::table)
                .values(NewCard { player_id: id, cardid: card_for(i) })
                .execute(conn)?;
        }
        Ok(())
    })
}

/// (b) Diesel's batch insert, chunked by the bind limit, cards from the returned ids.
fn diesel_batches(conn: &mut Conn, game: i64, n: usize) -> Result<(), AnyError> {
    conn.transaction::<_, AnyError, _>(|conn| {
        let players: Vec<PlainPlayer> = (0..n).map(|i| player(game, i)).collect();
        let mut ids = Vec::with_capacity(n);
        for chunk in players.chunks(MAX_BINDS / 2) {
            ids.extend(insert_returning_ids(conn, chunk)?);
        }
        let cards: Vec<NewCard> = ids
            .iter()
            .enumerate()
            .map(|(i, &id)| NewCard { player_id: id, cardid: card_for(i) })
            .collect();
        for chunk in cards.chunks(MAX_BINDS / 2) {
            diesel::insert_into(cards::table).values(chunk).execute(conn)?;
        }
        Ok(())
    })
}

/// (c) The 5-query pattern; the players are streamed from an iterator, as a caller would.
fn pattern(conn: &mut Conn, game: i64, n: usize) -> Result<(), AnyError> {
    let mut op = BatchOperation::create_synchronous("bench").insert(conn)?;
    let players = (0..n).map(|i| NewPlayer {
        game_id: game,
        name: format!("player{i}"),
        batchoperation_id: None,
    });
    bulk_insert_tracked(conn, &op, players)?;
    // Streamed select-back (row by row on PostgreSQL), cards built as players arrive.
    let cards: Vec<NewCard> = Player::in_batch(&op)
        .select(Player::as_select())
        .order(players::id)
        .load_iter::<Player, Loading>(conn)?
        .enumerate()
        .map(|(i, p)| p.map(|p| NewCard { player_id: p.id, cardid: card_for(i) }))
        .collect::<QueryResult<_>>()?;
    bulk_insert(conn, cards)?;
    op.finish(conn)?;
    Ok(())
}

/// (d) The server's floor: `psql \copy` of the same rows (ids, game, operation, cards) with the
/// same foreign keys. Writing the files is not timed; the two psql runs are.
fn floor(conn: &mut Conn, url: &str, game: i64, n: usize) -> Result<Duration, AnyError> {
    use std::fmt::Write as _;
    let op = BatchOperation::create_synchronous("bench-floor").insert(conn)?;
    let dir = tempfile::tempdir()?;
    let (players_file, cards_file) = (dir.path().join("players.tsv"), dir.path().join("cards.tsv"));
    let (mut players, mut cards) = (String::new(), String::new());
    for i in 0..n {
        let id = i + 1;
        writeln!(players, "{id}\t{game}\tplayer{i}\t{}", op.id())?;
        writeln!(cards, "{id}\t{}", card_for(i))?;
    }
    std::fs::write(&players_file, players)?;
    std::fs::write(&cards_file, cards)?;
    let copy = |target: &str, file: &std::path::Path| -> Result<(), AnyError> {
        let status = std::process::Command::new("psql")
            .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c"])
            .arg(format!("\\copy {target} from '{}'", file.display()))
            .status()?;
        if status.success() { Ok(()) } else { Err(format!("psql \\copy {target} failed").into()) }
    };
    let started = Instant::now();
    copy("players (id, game_id, name, batchoperation_id)", &players_file)?;
    copy("cards (player_id, cardid)", &cards_file)?;
    Ok(started.elapsed())
}
