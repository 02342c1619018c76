ALTER TABLE `players` DROP FOREIGN KEY `players_batchoperation_id_fk`;
ALTER TABLE `players` DROP INDEX `players_batchoperation_id_idx`, DROP COLUMN `batchoperation_id`;
DROP TABLE cards;
DROP TABLE players;
DROP TABLE games;
