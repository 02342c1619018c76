-- The Game/Player/Card tables. The players' tracking column below is the output of
-- `batchframework_diesel::tracking_column_sql(Dialect::Mysql, "players")`.
CREATE TABLE games (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    name VARCHAR(100) NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE players (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    game_id BIGINT NOT NULL,
    name VARCHAR(100) NOT NULL,
    CONSTRAINT players_game_id_fk FOREIGN KEY (game_id) REFERENCES games (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
CREATE TABLE cards (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    player_id BIGINT NOT NULL,
    cardid INTEGER NOT NULL,
    CONSTRAINT cards_player_id_fk FOREIGN KEY (player_id) REFERENCES players (id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

ALTER TABLE `players` ADD COLUMN `batchoperation_id` BIGINT NULL,
    ADD INDEX `players_batchoperation_id_idx` (`batchoperation_id`),
    ADD CONSTRAINT `players_batchoperation_id_fk` FOREIGN KEY (`batchoperation_id`) REFERENCES batchframework_batchoperation (id) ON DELETE SET NULL;
