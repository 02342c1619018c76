// The variants, compiled once per backend (included by main.rs, which defines `Conn`,
// `SCHEMA`, `DROP`, `MAX_BINDS`, `Loading` and `insert_returning_ids` for that backend).

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
        Variant::StrictFloor => strict_floor(conn, game, n)?,
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

/// Ids as runs of consecutive ids: one `COPY` or multi-row `INSERT` takes consecutive ids from
/// the table's sequence, so the players of one batch are one run (a few if other inserts
/// interleave), and keeping them costs the same at 10 players or 10 million.
#[derive(Default)]
pub(crate) struct IdRuns(Vec<(i64, usize)>);

impl IdRuns {
    fn push(&mut self, id: i64) {
        match self.0.last_mut() {
            Some((first, len)) if *first + *len as i64 == id => *len += 1,
            _ => self.0.push((id, 1)),
        }
    }

    fn len(&self) -> usize {
        self.0.iter().map(|(_, len)| len).sum()
    }

    fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        self.0.iter().flat_map(|&(first, len)| first..first + len as i64)
    }
}

/// The pattern's select-back (step 3): the operation's players, ordered by id, streamed (row
/// by row on PostgreSQL); what the cards need of them, their ids, is kept.
fn select_back(conn: &mut Conn, op: &BatchOperation) -> Result<IdRuns, AnyError> {
    let mut ids = IdRuns::default();
    for player in Player::in_batch(op)
        .select(Player::as_select())
        .order(players::id)
        .load_iter::<Player, Loading>(conn)?
    {
        ids.push(player?.id);
    }
    Ok(ids)
}

/// (c) The 5-query pattern; the players are streamed from an iterator, as a caller would, and
/// the cards from the ids selected back.
fn pattern(conn: &mut Conn, game: i64, n: usize) -> Result<(), AnyError> {
    let mut op = BatchOperation::create_synchronous("bench").insert(conn)?;
    let players = (0..n).map(|i| NewPlayer {
        game_id: game,
        name: format!("player{i}"),
        batchoperation_id: None,
    });
    bulk_insert_tracked(conn, &op, players)?;
    let ids = select_back(conn, &op)?;
    let cards = ids
        .iter()
        .enumerate()
        .map(|(i, id)| NewCard { player_id: id, cardid: card_for(i) });
    bulk_insert(conn, cards)?;
    op.finish(conn)?;
    Ok(())
}

/// (e) The strict floor (PostgreSQL): the same players and cards with ids the bench chooses,
/// each table one binary `COPY` written by hand (`copy_floor.rs`), and between them the same
/// select-back as (c). The operation the players point at is created untimed.
fn strict_floor(conn: &mut Conn, game: i64, n: usize) -> Result<Duration, AnyError> {
    use crate::copy_floor::StrictFloor;
    let op = BatchOperation::create_synchronous("bench-strict-floor").insert(conn)?;
    let started = Instant::now();
    conn.copy_players_with_ids(game, op.id(), n)?;
    let ids = select_back(conn, &op)?;
    conn.copy_cards_with_ids(n)?;
    let took = started.elapsed();
    if ids.len() != n {
        return Err(format!("the strict floor selected back {} players, not {n}", ids.len()).into());
    }
    Ok(took)
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
