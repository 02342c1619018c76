-- The Game/Player/Card tables. The players' tracking column below is the output of
-- `batchframework_diesel::tracking_column_sql(Dialect::Sqlite, "players")`.
CREATE TABLE games (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    name VARCHAR(100) NOT NULL
);
CREATE TABLE players (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    game_id BIGINT NOT NULL REFERENCES games (id),
    name VARCHAR(100) NOT NULL
);
CREATE TABLE cards (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    player_id BIGINT NOT NULL REFERENCES players (id),
    cardid INTEGER NOT NULL
);
CREATE INDEX cards_player_id_idx ON cards (player_id);

ALTER TABLE "players" ADD COLUMN "batchoperation_id" BIGINT NULL REFERENCES batchframework_batchoperation (id) ON DELETE SET NULL;
CREATE INDEX "players_batchoperation_id_idx" ON "players" ("batchoperation_id");
