DROP INDEX "players_batchoperation_id_idx";
ALTER TABLE "players" DROP COLUMN "batchoperation_id";
DROP TABLE cards;
DROP TABLE players;
DROP TABLE games;
